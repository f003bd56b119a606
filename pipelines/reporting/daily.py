"""One UTC day of the reporting views as Arrow tables, from a warehouse URL or a Parquet root.

A day is computed from the snapshots of that day plus a margin on each side (``MARGIN``), not from the whole
history: the margin gives the state at midnight and the next state after it. The views over the whole history
and these functions agree whenever no agent goes unseen for longer than the margin across midnight; when one
does, the views report the span before midnight as unobserved and a day computed here leaves it uncovered.
Every result is cast to one Arrow schema per view (``SCHEMAS``) and sorted by its key, so the three backends
return identical tables.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.reporting.views import compile_view, connect

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


def intervals(source: Source, day: date | None = None, margin: timedelta = MARGIN) -> pa.Table:
    """``agent_state_interval``: the whole history, or the intervals overlapping ``day`` (computed from its
    snapshots and the margin)."""
    if day is None:
        return _run(source, "agent_state_interval", None, margin, "")
    start = _epoch_us(_midnight(day))
    where = f"ended_at_us > {start} AND started_at_us < {start + 86_400_000_000}"
    return _run(source, "agent_state_interval", day, margin, where)


def hourly_time_in_state(source: Source, day: date, margin: timedelta = MARGIN) -> pa.Table:
    """``agent_time_in_state_hourly`` for ``day``."""
    return _run_day(source, "agent_time_in_state_hourly", day, margin)


def daily_time_in_state(source: Source, day: date, margin: timedelta = MARGIN) -> pa.Table:
    """``agent_time_in_state_daily`` for ``day`` (observed = false rows hold the unobserved seconds)."""
    return _run_day(source, "agent_time_in_state_daily", day, margin)


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


def _epoch_us(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


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
