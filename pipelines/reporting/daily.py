"""One UTC day of the reporting views as Arrow tables, from a warehouse URL or a Parquet root.

A day is computed from the snapshots of that day plus a margin on each side (``MARGIN``), not from the whole
history: the margin gives the state at midnight and the next state after it. The views over the whole history
and these functions agree whenever no agent goes unseen for longer than the margin across midnight; when one
does, the views report the span before midnight as unobserved and a day computed here leaves it uncovered.
Every result is cast to one Arrow schema per view (``SCHEMAS``) and sorted by its key, so the three backends
return identical tables.

Intervals and time in state read the persisted intervals instead when they exist (``interval_store``): on a
warehouse, ``agent_state_interval_store`` and ``agent_state_open`` once built; on a Parquet root, the day's
``agent_state_interval/date=YYYY-MM-DD/part.parquet`` written by the reporting asset. Those hold the view's rows
over the whole history, so the margin plays no part there. ``from_snapshots=True`` computes from the snapshots
(the reference, and the fallback when nothing is persisted).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import sqlalchemy as sa

from pipelines.reporting import interval_store
from pipelines.reporting.views import _rows_to_arrow, compile_view, connect, is_warehouse_url, sqlglot_dialect
from pipelines.storage.parquet import partition_parts

MARGIN = timedelta(hours=3)  # at most a day: a day reads the Parquet partitions of the day before and after

Source = str | os.PathLike[str]

_TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "agent_state_interval": pa.schema([
        ("agent_id", pa.string()), ("chat_state_code", pa.int64()), ("chat_state", pa.string()),
        ("agent_group_id", pa.string()), ("started_at", _TS), ("ended_at", _TS), ("seconds", pa.float64()),
        ("observed", pa.bool_()), ("started_at_us", pa.int64()), ("ended_at_us", pa.int64()),
    ]),
    "agent_time_in_state_hourly": pa.schema([
        ("day", pa.date32()), ("hour", pa.int32()), ("agent_id", pa.string()), ("chat_state_code", pa.int64()),
        ("chat_state", pa.string()), ("observed", pa.bool_()), ("seconds", pa.float64()),
        ("duration_us", pa.int64()),
    ]),
    "agent_time_in_state_daily": pa.schema([
        ("day", pa.date32()), ("agent_id", pa.string()), ("chat_state_code", pa.int64()),
        ("chat_state", pa.string()), ("observed", pa.bool_()), ("seconds", pa.float64()),
        ("share_of_observed_day", pa.float64()), ("duration_us", pa.int64()),
    ]),
    "agent_utilization_hourly": pa.schema([
        ("day", pa.date32()), ("hour", pa.int32()), ("agent_id", pa.string()), ("avg_active_chats", pa.float64()),
        ("max_chats", pa.int64()), ("utilization", pa.float64()), ("chats_handled", pa.int64()),
        ("snapshots", pa.int64()), ("active_snapshots", pa.int64()), ("active_chats_sum", pa.int64()),
        ("capped_chats_sum", pa.int64()), ("capacity_sum", pa.int64()),
    ]),
    "agent_utilization_daily": pa.schema([
        ("day", pa.date32()), ("agent_id", pa.string()), ("avg_active_chats", pa.float64()),
        ("max_chats", pa.int64()), ("utilization", pa.float64()), ("chats_handled", pa.int64()),
        ("snapshots", pa.int64()), ("active_snapshots", pa.int64()),
    ]),
    "chat_capacity_snapshot": pa.schema([
        ("snapshot_id", pa.string()), ("snapshot_at", _TS), ("day", pa.date32()), ("available_slots", pa.int64()),
        ("monitored_active_chats", pa.int64()), ("monitored_agents_available", pa.int64()),
    ]),
}

KEYS: dict[str, list[str]] = {
    "agent_state_interval": ["agent_id", "started_at_us", "ended_at_us"],
    "agent_time_in_state_hourly": ["day", "hour", "agent_id", "observed", "chat_state"],
    "agent_time_in_state_daily": ["day", "agent_id", "observed", "chat_state"],
    "agent_utilization_hourly": ["day", "hour", "agent_id"],
    "agent_utilization_daily": ["day", "agent_id"],
    "chat_capacity_snapshot": ["snapshot_at", "snapshot_id"],
}


def intervals(
    source: Source, day: date | None = None, margin: timedelta = MARGIN, *, from_snapshots: bool = False
) -> pa.Table:
    """``agent_state_interval``: the whole history, or the intervals overlapping ``day``; from the persisted
    intervals when there are (see the module's docstring), else computed from the snapshots and the margin."""
    if not from_snapshots:
        stored = _stored(source, "agent_state_interval", day)
        if stored is not None:
            return stored
    if day is None:
        return _run(source, "agent_state_interval", None, margin, "")
    start = interval_store.epoch_us(_midnight(day))
    where = f"ended_at_us > {start} AND started_at_us < {start + 86_400_000_000}"
    return _run(source, "agent_state_interval", day, margin, where)


def hourly_time_in_state(
    source: Source, day: date, margin: timedelta = MARGIN, *, from_snapshots: bool = False
) -> pa.Table:
    """``agent_time_in_state_hourly`` for ``day``."""
    stored = None if from_snapshots else _stored(source, "agent_time_in_state_hourly", day)
    return stored if stored is not None else _run_day(source, "agent_time_in_state_hourly", day, margin)


def daily_time_in_state(
    source: Source, day: date, margin: timedelta = MARGIN, *, from_snapshots: bool = False
) -> pa.Table:
    """``agent_time_in_state_daily`` for ``day`` (observed = false rows hold the unobserved seconds)."""
    stored = None if from_snapshots else _stored(source, "agent_time_in_state_daily", day)
    return stored if stored is not None else _run_day(source, "agent_time_in_state_daily", day, margin)


INTERVAL_PARTITION = "agent_state_interval"  # PARQUET_ROOT/agent_state_interval/date=YYYY-MM-DD/part.parquet


def interval_partition(root: Source, day: date) -> str | None:
    """The day's persisted intervals under a Parquet root (those overlapping the day), or None when not written."""
    root = str(root).rstrip("/")
    path = "/".join([root, *partition_parts(INTERVAL_PARTITION, day)])
    if "://" not in root:
        return path if os.path.isfile(path) else None
    fs, inner = pafs.FileSystem.from_uri(path)
    return path if fs.get_file_info(inner).type == pafs.FileType.File else None


def partition_sql(path: str) -> str:
    """DuckDB's SELECT of one partition file (the path quoted as an SQL string)."""
    return f"SELECT * FROM read_parquet('{path.replace(chr(39), chr(39) * 2)}')"


def stored_sql(view: str, dialect: str, day: date | None, intervals_sql: str | None = None) -> str:
    """The query computing ``view`` (intervals or time in state) for ``day`` from persisted intervals:
    ``intervals_sql`` (a SELECT of the view's columns; default: the warehouse's store, restricted to the day)."""
    bounds: tuple[int | None, int | None] = (None, None)
    if day is not None:
        start = interval_store.epoch_us(_midnight(day))
        bounds = (start, start + 86_400_000_000)
    source = intervals_sql or interval_store.current_rows_sql(dialect, *bounds)
    if view == "agent_state_interval":
        return source
    sql = compile_view(view, dialect, inline=True, tables={"agent_state_interval": source})
    return f"SELECT * FROM ({sql}) AS v WHERE day = {_date_literal(dialect, day)}"


def _stored(source: Source, view: str, day: date | None) -> pa.Table | None:
    """``view`` for ``day`` from the persisted intervals, or None when there are none to read."""
    if is_warehouse_url(source):
        engine = sa.create_engine(str(source))
        try:
            with engine.connect() as conn:
                if not interval_store.is_built(conn):
                    return None
                table = _rows_to_arrow(conn.exec_driver_sql(stored_sql(view, sqlglot_dialect(conn.dialect.name), day)))
        finally:
            engine.dispose()
    else:
        path = None if day is None else interval_partition(source, day)
        if path is None:
            return None
        if view == "agent_state_interval":
            table = pq.read_table(path)
        else:
            con = duckdb.connect()
            try:
                con.execute("SET TimeZone = 'UTC'")
                table = con.sql(stored_sql(view, "duckdb", day, partition_sql(path))).to_arrow_table()
            finally:
                con.close()
    return conform(table, SCHEMAS[view]).sort_by([(key, "ascending") for key in KEYS[view]])


def hourly_utilization(source: Source, day: date) -> pa.Table:
    """``agent_utilization_hourly`` for ``day``."""
    return _run_day(source, "agent_utilization_hourly", day, timedelta(0))


def daily_utilization(source: Source, day: date) -> pa.Table:
    """``agent_utilization_daily`` for ``day``."""
    return _run_day(source, "agent_utilization_daily", day, timedelta(0))


def capacity(source: Source, day: date) -> pa.Table:
    """``chat_capacity_snapshot`` for ``day``: available slots beside monitored agents' active chats."""
    return _run_day(source, "chat_capacity_snapshot", day, timedelta(0))


def agents(source: Source) -> pa.Table:
    """The ``agent`` dimension's names and groups, for labelling reports."""
    with connect(source, days=()) as (_, run):  # a dimension: no fact partition needs opening
        table = run("SELECT agent_id, user_name, agent_group_id, agent_group_name, monitored FROM agent")
    schema = pa.schema([
        ("agent_id", pa.string()), ("user_name", pa.string()), ("agent_group_id", pa.string()),
        ("agent_group_name", pa.string()), ("monitored", pa.bool_()),
    ])
    return conform(table, schema).sort_by("agent_id")


def _run_day(source: Source, view: str, day: date, margin: timedelta) -> pa.Table:
    return _run(source, view, day, margin, "day = {day}")


def _run(source: Source, view: str, day: date | None, margin: timedelta, where: str) -> pa.Table:
    with connect(source, None if day is None else partition_days(day)) as (dialect, run):
        table = run(day_sql(view, dialect, day, margin, where))
    return conform(table, SCHEMAS[view]).sort_by([(key, "ascending") for key in KEYS[view]])


def partition_days(day: date) -> list[date]:
    """The ``date=`` partitions a day's query reads: the day and its neighbours (the margin is at most a day)."""
    return [day + timedelta(days=k) for k in (-1, 0, 1)]


def day_sql(
    view: str, dialect: str, day: date | None, margin: timedelta = MARGIN, where: str = "day = {day}"
) -> str:
    """The one query that computes ``view`` for ``day`` (or the whole history) in ``dialect``."""
    filters = _day_filters(dialect, day, margin) if day is not None else None
    sql = f"SELECT * FROM ({compile_view(view, dialect, inline=True, filters=filters)}) AS v"
    if where:
        sql += " WHERE " + where.format(day=_date_literal(dialect, day) if day else "")
    return sql


def _day_filters(dialect: str, day: date, margin: timedelta) -> dict[str, str]:
    """Conditions that restrict the base tables to what ``day`` needs (the snapshots with the margin on each side);
    ``{t}`` is the alias the view reads the table as."""
    start = _midnight(day)
    end = start + timedelta(days=1)

    def window(column: str, lo: datetime, hi: datetime) -> str:
        return f"{{t}}.{column} >= {_ts_literal(dialect, lo)} AND {{t}}.{column} < {_ts_literal(dialect, hi)}"

    return {
        "agent_state_snapshot": window("snapshot_at", start - margin, end + margin),
        "chat_slots_snapshot": window("snapshot_at", start, end),
        "chat_session": window("start_time", start, end),
    }


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _ts_literal(dialect: str, at: datetime) -> str:
    text = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if dialect == "sqlite":
        return f"'{text}'"  # the stored text form: compares in time order
    if dialect == "duckdb":
        return f"CAST('{text}+00' AS TIMESTAMPTZ)"
    return f"CAST('{text}' AS TIMESTAMP)"


def _date_literal(dialect: str, day: date) -> str:
    return f"'{day.isoformat()}'" if dialect == "sqlite" else f"CAST('{day.isoformat()}' AS DATE)"


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` cast to ``schema``: text timestamps (SQLite) parsed as UTC, naive ones labelled UTC, 0/1 to
    booleans, PostgreSQL numerics to integers. A column missing or extra is an error (a view drifted)."""
    if set(table.column_names) != set(schema.names):
        raise ValueError(f"columns {sorted(table.column_names)} do not match {sorted(schema.names)}")
    columns = []
    for field in schema:
        column = table[field.name]
        if pa.types.is_timestamp(field.type) and pa.types.is_string(column.type):
            column = pc.cast(column, pa.timestamp("us"))
        if pa.types.is_timestamp(field.type) and pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = pc.cast(column, pa.timestamp("us"))
        columns.append(pc.cast(column, field.type))
    return pa.Table.from_arrays(columns, schema=schema)
