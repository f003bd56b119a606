"""The reporting views: one portable SQL source each (``sql/views/*.sql``), compiled per dialect with sqlglot.

Each source is written once in PostgreSQL syntax. Three things differ between SQLite, PostgreSQL and DuckDB in
ways sqlglot does not translate, so the sources use four small macros, expanded here at the syntax-tree level:

- ``EPOCH_US(ts)``: integer microseconds since 1970 (exact on every dialect, so durations compare equal);
- ``IDIV(a, b)``: integer division of non-negative integers (DuckDB's ``/`` returns a double);
- ``DAY_DATE(n)``: the DATE of UTC day number ``n`` (a text date on SQLite, as its dates are);
- ``TS_FROM_US(n)``: the timestamp of ``n`` microseconds since 1970, exact on every dialect.

Views are created in a warehouse (SQLite, PostgreSQL), or in a DuckDB connection whose contract tables are views
over the Parquet files. ``compile_view(..., inline=True, filters=...)`` instead returns one self-contained query
with the views it reads inlined and a condition (one day's bounds) added where each chosen base table is read:
that is how one day is computed without reconstructing the whole history. Compiled SQL is cached per process.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from functools import cache, lru_cache
from graphlib import TopologicalSorter
from pathlib import Path

import duckdb
import pyarrow as pa
import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from pipelines.storage.schema import ARROW_SCHEMAS, DIMENSION_TABLES

VIEWS_DIR = Path(__file__).resolve().parents[2] / "sql" / "views"
SOURCE_DIALECT = "postgres"
DIALECTS = ("sqlite", "postgres", "duckdb")

Query = Callable[[str], pa.Table]

_MACROS: dict[str, dict[str, str]] = {
    "EPOCH_US": {
        # whole seconds of 'YYYY-MM-DD HH:MM:SS' (without the fraction, which SQLite would round to milliseconds,
        # carrying .999999 into the next second), plus the six digits after the dot
        # (UNIXEPOCH, SQLite >= 3.38, is ten times faster than STRFTIME('%s'); both truncate to whole seconds)
        "sqlite": "(UNIXEPOCH(SUBSTR(_a0, 1, 19)) * 1000000"
        " + CAST(SUBSTR(SUBSTR(_a0, 21) || '000000', 1, 6) AS INTEGER))",
        "postgres": "CAST(EXTRACT(EPOCH FROM _a0) * 1000000 AS BIGINT)",
        "duckdb": "EPOCH_US(_a0)",
    },
    "IDIV": {
        "sqlite": "(_a0 / _a1)",
        "postgres": "(_a0 / _a1)",
        "duckdb": "(_a0 // _a1)",
    },
    "TS_FROM_US": {
        # the TIMESTAMP (naive UTC; SQLite: text as SQLAlchemy stores it) of integer microseconds since 1970
        "sqlite": "(STRFTIME('%Y-%m-%d %H:%M:%S', _a0 / 1000000, 'unixepoch') || '.'"
        " || SUBSTR('000000' || (_a0 % 1000000), -6, 6))",
        "postgres": "(CAST('1970-01-01 00:00:00' AS TIMESTAMP) + _a0 * INTERVAL '1 microsecond')",
        "duckdb": "CAST(MAKE_TIMESTAMP(_a0) AS TIMESTAMPTZ)",
    },
    "DAY_DATE": {
        "sqlite": "DATE(_a0 * 86400, 'unixepoch')",
        "postgres": "CAST('1970-01-01' AS DATE) + CAST(_a0 AS INTEGER)",
        "duckdb": "CAST('1970-01-01' AS DATE) + CAST(_a0 AS INTEGER)",
    },
}


def sqlglot_dialect(name: str) -> str:
    """sqlglot's name for a SQLAlchemy or DuckDB dialect name (``postgresql`` -> ``postgres``)."""
    return "postgres" if name == "postgresql" else name


@cache
def view_names() -> tuple[str, ...]:
    """Every view under ``sql/views``, dependencies first."""
    names = sorted(path.stem for path in VIEWS_DIR.glob("*.sql"))
    graph = {name: sorted(_referenced_tables(name) & set(names)) for name in names}
    return tuple(TopologicalSorter(graph).static_order())


@cache
def load_source(name: str) -> str:
    """The portable source of view ``name``."""
    return (VIEWS_DIR / f"{name}.sql").read_text()


def _parse(name: str) -> exp.Expression:
    return sqlglot.parse_one(load_source(name), read=SOURCE_DIALECT)


def _referenced_tables(name: str) -> set[str]:
    tree = _parse(name)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return {table.name for table in tree.find_all(exp.Table)} - ctes


def compile_view(
    name: str,
    dialect: str,
    *,
    inline: bool = False,
    tables: Mapping[str, str] | None = None,
    filters: Mapping[str, str] | None = None,
) -> str:
    """The SELECT of view ``name`` in ``dialect``.

    With ``inline``, the views it reads become subqueries (recursively), so the query needs only the base
    tables; ``tables`` maps a base table or a view to a SELECT (in ``dialect``) to read instead, and ``filters``
    maps a base table to a condition (in ``dialect``, ``{t}`` standing for the table's alias) added where the table
    is read (to the WHERE of the SELECT it is the FROM of, or to its JOIN's ON), e.g. one day's rows. A filter keeps the
    table in the query that reads it: SQLite then reads a day through an index in the window's order, where a
    filtered subquery would be a separate step whose rows the window sorts again.

    The transpiled SQL is cached per process (sqlglot takes 0.5-1 s for the inlined daily views); tables and
    filters enter it as placeholders replaced by text, so another day costs no second transpiling.
    """
    dialect = sqlglot_dialect(dialect)
    tables = dict(tables or {}) if inline else {}
    filters = dict(filters or {}) if inline else {}
    sql = _compiled(name, dialect, inline, frozenset(tables), frozenset(filters))
    for table, select in tables.items():
        sql = sql.replace(_placeholder(table), f"({select})")
    if filters:
        sql = _FILTER.sub(lambda m: "(" + filters[m.group(1)].replace("{t}", m.group(2)) + ")", sql)
    return sql


@lru_cache(maxsize=256)
def _compiled(name: str, dialect: str, inline: bool, tables: frozenset[str], filters: frozenset[str]) -> str:
    return _compile_tree(name, dialect, inline, tables, filters).sql(dialect=dialect)


def _placeholder(table: str) -> str:
    return f"__day_{table}__"


_FILTER = re.compile(r"__filter__([a-z0-9_]+?)__as__([a-z0-9_]+?)__")


def render(sql: str, dialect: str) -> str:
    """``sql`` written like a view source (PostgreSQL syntax, macros allowed) in ``dialect``."""
    dialect = sqlglot_dialect(dialect)
    return _expand_macros(sqlglot.parse_one(sql, read=SOURCE_DIALECT), dialect).sql(dialect=dialect)


def _compile_tree(
    name: str, dialect: str, inline: bool, tables: frozenset[str], filters: frozenset[str] = frozenset()
) -> exp.Expression:
    tree = _parse(name)
    if inline:
        views = set(view_names())
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in list(tree.find_all(exp.Table)):
            if table.name in ctes:
                continue
            if table.name in tables:  # a view too may be read from elsewhere (e.g. the persisted intervals)
                table.replace(exp.Table(this=exp.to_identifier(_placeholder(table.name)),
                                        alias=exp.TableAlias(this=exp.to_identifier(table.alias_or_name))))
            elif table.name in views:
                replacement = _compile_tree(table.name, dialect, inline, tables, filters)
                table.replace(exp.Subquery(this=replacement, alias=exp.TableAlias(this=exp.to_identifier(
                    table.alias_or_name))))
            elif table.name in filters:
                _add_filter(table)
    return _expand_macros(tree, dialect)


def _add_filter(table: exp.Table) -> None:
    """A placeholder condition on ``table`` where it is read (replaced by the caller's condition as text)."""
    alias = table.alias_or_name
    if not alias.islower() or not table.name.islower():
        raise ValueError(f"filtered table {table.name} AS {alias}: names must be lower case")
    marker = exp.column(f"__filter__{table.name}__as__{alias}__")
    if isinstance(table.parent, exp.From) and isinstance(table.parent.parent, exp.Select):
        table.parent.parent.where(marker, append=True, copy=False)
    elif isinstance(table.parent, exp.Join):
        join = table.parent
        on = join.args.get("on")
        join.set("on", marker if on is None else exp.and_(exp.Paren(this=on), marker))
    else:
        raise ValueError(f"cannot filter {table.name} where it is read: {table.parent.sql()}")


def _expand_macros(tree: exp.Expression, dialect: str) -> exp.Expression:
    """Replace each macro call by its expansion, innermost first so that arguments arrive expanded; an
    expansion is never scanned again (DuckDB's EPOCH_US expands to the built-in of the same name)."""
    calls = [call for call in tree.find_all(exp.Anonymous) if call.name.upper() in _MACROS]
    for call in sorted(calls, key=_depth, reverse=True):
        expansion = sqlglot.parse_one(_MACROS[call.name.upper()][dialect], read=dialect)
        arguments = {f"_a{i}": argument for i, argument in enumerate(call.expressions)}
        for column in list(expansion.find_all(exp.Column)):
            if column.name in arguments:
                argument = arguments[column.name].copy()
                # parenthesized unless atomic: IDIV(a + b, 2) must stay (a + b) / 2
                atomic = isinstance(argument, exp.Column | exp.Literal | exp.Paren)
                column.replace(argument if atomic else exp.Paren(this=argument))
        if call is tree:
            return expansion
        call.replace(expansion)
    return tree


def _depth(node: exp.Expression) -> int:
    depth = 0
    while node.parent is not None:
        node, depth = node.parent, depth + 1
    return depth


def create_views(url: str | sa.Engine) -> tuple[str, ...]:
    """Create or replace every view in the warehouse at ``url`` (one transaction); returns their names."""
    engine = sa.create_engine(url) if isinstance(url, str) else url
    names = view_names()
    dialect = sqlglot_dialect(engine.dialect.name)
    drop = "DROP VIEW IF EXISTS {} CASCADE" if dialect == "postgres" else "DROP VIEW IF EXISTS {}"
    try:
        with engine.begin() as conn:
            for name in reversed(names):
                conn.exec_driver_sql(drop.format(name))
            for name in names:
                conn.exec_driver_sql(f"CREATE VIEW {name} AS {compile_view(name, dialect)}")
    finally:
        if isinstance(url, str):
            engine.dispose()
    return names


def parquet_connection(
    root: str | os.PathLike[str], *, days: Sequence[date] | None = None, with_views: bool = True
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose contract tables are views over the Parquet files under ``root``.

    Facts read ``root/<table>/*/*.parquet`` (hive ``date=`` partitions, columns matched by name so older files
    missing a newer column still read), or only the ``date=`` folders of ``days``: binding a view reads the
    footer of every file it names, so a day's report must not name the whole history. Dimensions read
    ``root/<table>/current.parquet``. A table with no file yet is an empty table of its contract schema. The
    session time zone is UTC.
    """
    root = str(root).rstrip("/")
    if "://" not in root and not any(os.path.isdir(os.path.join(root, table)) for table in ARROW_SCHEMAS):
        raise FileNotFoundError(f"no contract table under {root}")  # a wrong path, not an empty report
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table, schema in ARROW_SCHEMAS.items():
        if table in DIMENSION_TABLES:
            patterns = [f"{root}/{table}/current.parquet"]
            options = ""
        else:
            folders = ["*"] if days is None else [f"date={day.isoformat()}" for day in sorted(set(days))]
            patterns = [f"{root}/{table}/{folder}/*.parquet" for folder in folders]
            options = ", hive_partitioning = true, union_by_name = true, hive_types = {'date': 'DATE'}"
        if "://" not in root:
            patterns = [pattern for pattern in patterns if glob.glob(pattern)]
        if patterns:
            files = ", ".join(_quote(pattern) for pattern in patterns)
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{files}]{options})")
        else:
            empty = schema.empty_table()
            if table not in DIMENSION_TABLES:
                empty = empty.append_column("date", pa.array([], pa.date32()))
            con.register(f"_empty_{table}", empty)
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM _empty_{table}")
    if with_views:
        for name in view_names():
            con.execute(f"CREATE VIEW {name} AS {compile_view(name, 'duckdb')}")
    return con


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def is_warehouse_url(source: str | os.PathLike[str]) -> bool:
    """True for a SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``); else a Parquet root."""
    return isinstance(source, str) and source.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql")


@contextmanager
def connect(
    source: str | os.PathLike[str], days: Sequence[date] | None = None
) -> Iterator[tuple[str, Query]]:
    """``(sqlglot dialect, run)`` for a warehouse URL or a Parquet root (of which only the partitions of
    ``days`` when given); ``run(sql)`` returns an Arrow table with the columns as the database typed them
    (text timestamps on SQLite)."""
    if is_warehouse_url(source):
        engine = sa.create_engine(source)
        try:
            with engine.connect() as conn:
                yield sqlglot_dialect(engine.dialect.name), lambda sql: _rows_to_arrow(conn.exec_driver_sql(sql))
        finally:
            engine.dispose()
    else:
        con = parquet_connection(source, days=days, with_views=False)
        try:
            yield "duckdb", lambda sql: con.sql(sql).to_arrow_table()
        finally:
            con.close()


def _rows_to_arrow(result: sa.CursorResult) -> pa.Table:
    columns = list(result.keys())
    rows = result.all()
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    return pa.table({name: pa.array(list(column)) for name, column in zip(columns, values, strict=True)})
