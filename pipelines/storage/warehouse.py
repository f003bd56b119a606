"""The SQL warehouse: one engine per URL (SQLite or PostgreSQL), migrations, bulk upserts and table reads.

SQLite is tuned for one writer and concurrent readers (WAL, a 30 s busy timeout, and ``BEGIN IMMEDIATE`` so that
a write transaction takes its lock up front instead of failing half-way on an upgrade).

Durability on SQLite: WAL with ``synchronous = NORMAL`` (no fsync per commit; the WAL is fsynced before each
checkpoint and the database file after it). Every transaction stays atomic and the database consistent after a
crash of the process (SIGKILL included: a commit that returned is in the operating system's cache and survives
it, so events and their cursor are never lost or duplicated). Only a power loss or kernel crash may roll back the
last commits (those since the last checkpoint), and then events and cursors go back together (they share a
transaction): the next poll fetches those events again. A Parquet file written after such a commit can then be
ahead of SQL (its rows come again in a later run's file).

Every statement is built by SQLAlchemy Core from the fixed tables in ``schema.py``: values are always bound
parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from pipelines.storage import migrations, schema
from pipelines.storage.lock import writer_lock

SQLITE_BUSY_TIMEOUT_S = 30.0
# Checkpoint the WAL into the database file once it holds this many pages (4 KiB each: ~40 MB) instead of
# SQLite's default 1,000: a 20,000-event commit is ~2,000 pages, so the default checkpointed (two fsyncs) after
# nearly every commit. Measured (a 20,000-row chat_event commit): 110 ms -> 21 ms with synchronous = NORMAL.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000

Rows = pa.Table | Sequence[Mapping[str, Any]]


class Warehouse:
    """The warehouse at ``url`` (e.g. ``sqlite:///data/warehouse.db``, ``postgresql+psycopg://u@h/db``)."""

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        if self.url.get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(self.url)
        elif self.url.get_backend_name() == "postgresql":
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        else:
            raise ValueError(f"unsupported warehouse backend: {self.url.get_backend_name()!r}")

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a file-backed SQLite warehouse; None for PostgreSQL and in-memory SQLite."""
        if self.dialect != "sqlite" or not _is_sqlite_file(self.url):
            return None
        return Path(self.url.database).resolve()

    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied now."""
        return migrations.migrate(self.engine)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    def writer_lock(self, wait_s: float) -> AbstractContextManager[bool]:
        """The one-writer-at-a-time lock (see ``lock.writer_lock``)."""
        return writer_lock(self, wait_s)

    def upsert(self, conn: sa.Connection, table: str, rows: Rows, update: bool = True) -> int:
        """Insert ``rows``; on a key conflict update the given non-key columns (or keep the row when not
        ``update``). Columns absent from ``rows`` are left as stored; of rows sharing a key the last one counts.
        Returns the number of distinct rows sent.

        Values are prepared column-wise by Arrow, then sent in bulk: on SQLite one statement compiled by
        SQLAlchemy, executed by the ``sqlite3`` cursor of this same connection and transaction (``executemany``
        without SQLAlchemy's per-call execution machinery); on PostgreSQL ``COPY`` into a temporary staging table
        and one ``INSERT ... SELECT ... ON CONFLICT``. Per-row parameter processing in Python (SQLAlchemy's, or
        psycopg's executemany) is three to five times slower.
        """
        target = schema.table(table)
        arrow = _as_arrow(target, rows)
        if arrow.num_rows == 0:
            return 0
        columns = arrow.column_names
        keys = schema.KEYS[table]
        missing = [key for key in keys if key not in columns]
        if missing:
            raise ValueError(f"{table}: rows lack key columns {missing}")
        if arrow.group_by(list(keys)).aggregate([]).num_rows < arrow.num_rows:
            arrow = _last_per_key(arrow, keys)
        if self.dialect == "sqlite":
            _sqlite_executemany(conn, table, target, arrow, update)
        else:
            values = [bind_values(arrow.column(name), self.dialect) for name in columns]
            _postgres_copy(conn, table, target, columns, values, update)
        return arrow.num_rows

    def update_by_key(self, conn: sa.Connection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """``UPDATE table SET <the row's other columns> WHERE <its key columns>`` for every row: one statement per
        set of columns, executed for all of its rows at once (the driver's executemany) instead of one execution
        per row. Values are bound with the columns' types, as ``.values(**row)`` binds them."""
        target = schema.table(table)
        keys = schema.KEYS[table]
        groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(sorted(row)), []).append(row)
        for columns, members in groups.items():
            _check_columns(target, columns)
            missing = [key for key in keys if key not in columns]
            if missing:
                raise ValueError(f"{table}: rows lack key columns {missing}")
            names = {name: (f"k_{name}" if name in keys else f"v_{name}") for name in columns}
            values = {name: sa.bindparam(names[name], type_=target.c[name].type) for name in names if name not in keys}
            if not values:
                continue
            stmt = (
                sa.update(target)
                .where(*(target.c[key] == sa.bindparam(f"k_{key}", type_=target.c[key].type) for key in keys))
                .values(values)
            )
            params = [{names[name]: row[name] for name in columns} for row in members]
            conn.execute(stmt, params)

    def read_table(self, conn: sa.Connection, table: str, where: Mapping[str, Any] | None = None) -> pa.Table:
        """All rows of ``table`` matching ``where`` (column = value, ANDed), in key order, as its Arrow schema.

        Values come back untyped from the driver and are converted column-wise by Arrow (SQLite's timestamp
        text parses as ISO 8601; naive UTC becomes UTC), which is much faster than per-value result processing.
        """
        target = schema.table(table)
        arrow_schema = schema.ARROW_SCHEMAS[table]
        query = sa.select(*(sa.type_coerce(column, sa.types.NullType()).label(column.name) for column in target.c))
        for column, value in (where or {}).items():
            if column not in target.c:
                raise ValueError(f"{table} has no column {column!r}")
            query = query.where(target.c[column] == value)
        query = query.order_by(*(target.c[key] for key in schema.KEYS[table]))
        rows = conn.execute(query).all()
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(arrow_schema)
        arrays = [_from_driver(values, field.type) for values, field in zip(columns, arrow_schema, strict=True)]
        return pa.Table.from_arrays(arrays, schema=arrow_schema)

    def dispose(self) -> None:
        """Close pooled connections (tests, and processes that fork)."""
        self.engine.dispose()


def _is_sqlite_file(url: sa.URL) -> bool:
    database = url.database or ""
    return database not in ("", ":memory:") and url.query.get("mode") != "memory"


def _check_sqlite_path(path: Path) -> None:
    """Create the database's folder, or fail at once naming the place: SQLite itself would only say "unable to open
    database file" at the first query."""
    if path.is_dir():
        raise ValueError(f"the SQLite warehouse {path} is a folder, not a database file (check WAREHOUSE_URL)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"the SQLite warehouse's folder {path.parent} cannot be created: {exc.strerror} (check WAREHOUSE_URL)"
        ) from exc


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    """SQLite with WAL and BEGIN IMMEDIATE, per SQLAlchemy's documented pysqlite transaction recipe."""
    file_backed = _is_sqlite_file(url)
    if file_backed:
        _check_sqlite_path(Path(url.database))
    if file_backed:
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    else:  # one connection for every thread, or each thread would see its own empty in-memory database
        engine = sa.create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}, poolclass=sa.StaticPool
        )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below control transactions
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        if file_backed:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _as_arrow(target: sa.Table, rows: Rows) -> pa.Table:
    """``rows`` as an Arrow table of the target's types (timestamps as UTC instants; naive ones taken as UTC)."""
    full = schema.ARROW_SCHEMAS[target.name]
    if isinstance(rows, pa.Table):
        _check_columns(target, rows.column_names)
        return pa.Table.from_arrays(
            [rows.column(name).cast(full.field(name).type) for name in rows.column_names],
            schema=pa.schema([full.field(name) for name in rows.column_names]),
        )
    records = list(rows)
    columns = list(records[0]) if records else []
    _check_columns(target, columns)
    for record in records:
        if record.keys() != set(columns):
            raise ValueError(f"{target.name}: every row must have the same columns")
    return pa.Table.from_pylist(records, schema=pa.schema([full.field(name) for name in columns]))


def bind_values(column: pa.Array | pa.ChunkedArray, dialect: str) -> list[Any]:
    """Driver-ready values of one column: timestamps as naive UTC (SQLite: SQLAlchemy's DateTime text); NUL in
    text as U+FFFD on both dialects, because PostgreSQL text cannot hold it (a proxy's binary garbage in a dead
    letter must not fail the run)."""
    if pa.types.is_string(column.type):
        return pc.replace_substring(column, "\x00", "\ufffd").to_pylist()
    if pa.types.is_timestamp(column.type):
        # Casting drops the zone but keeps the instant: the values are UTC, which is what SQL stores.
        column = column.cast(pa.timestamp("us"))
        if dialect == "sqlite":  # Arrow's text form is SQLAlchemy's: 'YYYY-MM-DD HH:MM:SS.ffffff'
            return column.cast(pa.string()).to_pylist()
    return column.to_pylist()


def _from_driver(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    """One column as read by the driver (SQLite: timestamps as text, booleans as 0/1) in its Arrow type."""
    array = pa.array(values)
    if pa.types.is_timestamp(type_) and not pa.types.is_timestamp(array.type):
        array = array.cast(pa.timestamp("us"))  # naive UTC text; the zone is added below without shifting
    return array.cast(type_)


def _on_conflict(table: str, target: sa.Table, stmt: Any, columns: Sequence[str], update: bool) -> Any:
    keys = list(schema.KEYS[table])
    assignments = _assignments(table, target, stmt, columns) if update else {}
    if assignments:
        return stmt.on_conflict_do_update(index_elements=keys, set_=assignments)
    return stmt.on_conflict_do_nothing(index_elements=keys)


def _sqlite_executemany(conn: sa.Connection, table: str, target: sa.Table, arrow: pa.Table, update: bool) -> None:
    """One compiled statement, rows as tuples in placeholder order, through ``sqlite3``'s executemany on the
    DB-API connection under ``conn``: the statement runs inside ``conn``'s transaction (begun here if the
    connection has none yet, as SQLAlchemy's autobegin would), so it commits or rolls back with it. SQLAlchemy's
    cursor events and echo do not see it; its values are still bound parameters."""
    sql, order = _sqlite_statement(conn.dialect, table, tuple(arrow.column_names), update)
    values = [_sqlite_values(arrow.column(name)) for name in order]
    if not conn.in_transaction():
        conn.begin()
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, zip(*values, strict=True))
    finally:
        cursor.close()


_SQLITE_STATEMENTS: dict[tuple[str, str, tuple[str, ...], bool], tuple[str, tuple[str, ...]]] = {}


def _sqlite_statement(
    dialect: sa.Dialect, table: str, columns: tuple[str, ...], update: bool
) -> tuple[str, tuple[str, ...]]:
    """The SQL text of the insert (``ON CONFLICT ...``) and its placeholders' column order, compiled once."""
    key = (dialect.paramstyle, table, columns, update)
    if key not in _SQLITE_STATEMENTS:
        target = schema.table(table)
        stmt = _on_conflict(table, target, sqlite.insert(target), columns, update)
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
        _SQLITE_STATEMENTS[key] = (str(compiled), tuple(compiled.positiontup))
    return _SQLITE_STATEMENTS[key]


def _sqlite_values(column: pa.ChunkedArray) -> list[Any]:
    """``bind_values(column, "sqlite")``, cheaper on the bulk path: the NUL replacement only when a NUL is there
    at all, and a column holding one instant (``ingested_at``) formatted once."""
    if pa.types.is_string(column.type):
        if any(_has_nul(chunk) for chunk in column.chunks):
            column = pc.replace_substring(column, "\x00", "\ufffd")
        return _few_distinct_pylist(column) or column.to_pylist()
    if pa.types.is_timestamp(column.type) and len(column) > 1 and column.null_count == 0:
        low, high = pc.min_max(column).values()
        if low == high:
            return bind_values(column.slice(0, 1), "sqlite") * len(column)
    return bind_values(column, "sqlite")


def _few_distinct_pylist(column: pa.ChunkedArray) -> list[Any] | None:
    """``column.to_pylist()`` for a column of short, often repeated strings (chat ids, event types, sources,
    snapshot ids): one Python string per distinct value, repeated by a numpy take, instead of one per row. None
    when the column does not look like that (the caller converts it row by row)."""
    n = len(column)
    if n < 1_000 or (pc.sum(pc.binary_length(column)).as_py() or 0) > 64 * n:
        return None
    encoded = column.combine_chunks().dictionary_encode()
    if len(encoded.dictionary) > n // 4:
        return None
    distinct = np.array([*encoded.dictionary.to_pylist(), None], dtype=object)
    return distinct[encoded.indices.fill_null(len(encoded.dictionary)).to_numpy()].tolist()


def _has_nul(chunk: pa.Array) -> bool:
    """Whether any byte of the chunk's character data is NUL (a superset of its values' bytes: conservative)."""
    data = chunk.buffers()[2]
    return data is not None and bool((np.frombuffer(data, dtype=np.uint8) == 0).any())


def _postgres_copy(
    conn: sa.Connection, table: str, target: sa.Table, columns: list[str], values: list[list[Any]], update: bool
) -> None:
    """COPY the rows into a temporary staging table, then one ``INSERT ... SELECT ... ON CONFLICT`` from it.

    Identifiers come from the fixed schema (quoted by the dialect); values travel only in the COPY stream."""
    preparer = conn.dialect.identifier_preparer
    staging = f"staging_{table}"
    quoted = ", ".join(preparer.quote(name) for name in columns)
    like = f"LIKE {preparer.quote(table)} INCLUDING DEFAULTS"
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ({like}) ON COMMIT DROP")
    conn.exec_driver_sql(f"TRUNCATE {staging}")
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(
        f"COPY {staging} ({quoted}) FROM STDIN"
    ) as copy:  # psycopg's row formatting is compiled code; the cursor shares this transaction
        for row in zip(*values, strict=True):
            copy.write_row(row)
    source = sa.table(staging, *(sa.column(name) for name in columns))
    stmt = postgresql.insert(target).from_select(columns, sa.select(*(source.c[name] for name in columns)))
    conn.execute(_on_conflict(table, target, stmt, columns, update))


def _last_per_key(arrow: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Rows with distinct keys (the last wins): PostgreSQL refuses a batch that would update one row twice."""
    key_columns = [arrow.column(key).to_pylist() for key in keys]
    last = {key: index for index, key in enumerate(zip(*key_columns, strict=True))}
    return arrow.take(sorted(last.values()))


def _check_columns(target: sa.Table, columns: Sequence[str]) -> None:
    unknown = [name for name in columns if name not in target.c]
    if unknown:
        raise ValueError(f"{target.name} has no columns {unknown}")


def _assignments(table: str, target: sa.Table, stmt: Any, columns: Sequence[str]) -> dict[str, Any]:
    keys = set(schema.KEYS[table])
    keep = schema.KEEP_ON_UPDATE.get(table, frozenset())
    coalesce = schema.COALESCE_ON_UPDATE.get(table, frozenset())
    assignments: dict[str, Any] = {}
    for name in columns:
        if name in keys or name in keep:
            continue
        new = stmt.excluded[name]
        assignments[name] = sa.func.coalesce(new, target.c[name]) if name in coalesce else new
    return assignments
