"""The warehouse schema in Python: SQLAlchemy Core tables mirroring ``sql/migrations`` and one Arrow schema each.

The SQL files are the source of truth (a test reflects a migrated database and compares); these objects exist so
that DML is built by SQLAlchemy (parameterized, dialect-correct) and Parquet files get one explicit schema per
table, whatever the rows of a given run happen to contain.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import sqlalchemy as sa

metadata = sa.MetaData()


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """TIMESTAMP holding naive UTC; Python sees aware UTC datetimes both ways.

    Binding an aware value to a PostgreSQL ``timestamp`` would convert it through the session time zone, and
    SQLite would drop the offset silently: converting here keeps one meaning on both dialects. A naive value
    is taken to be UTC already.
    """

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(name: str, **kw: object) -> sa.Column:
    """A TIMESTAMP column: naive UTC in SQL (the warehouse never stores a time zone; everything is UTC)."""
    return sa.Column(name, UtcDateTime(), **kw)


def _text(name: str, **kw: object) -> sa.Column:
    return sa.Column(name, sa.Text(), **kw)


def _int(name: str, **kw: object) -> sa.Column:
    return sa.Column(name, sa.Integer(), **kw)


def _bigint(name: str, **kw: object) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), **kw)


snapshot_run = sa.Table(
    "snapshot_run",
    metadata,
    _text("snapshot_id", primary_key=True),
    _ts("started_at"),
    _ts("finished_at"),
    _text("status"),
    _text("source"),
    _text("account_id"),
    _int("interval_s"),
    _int("agents"),
    _int("chats"),
    _int("events"),
    _int("errors"),
    _ts("parquet_written_at"),
)

agent_state_snapshot = sa.Table(
    "agent_state_snapshot",
    metadata,
    _text("snapshot_id", primary_key=True),
    _ts("snapshot_at", nullable=False),
    _text("agent_id", primary_key=True),
    _int("chat_state_code"),
    _text("chat_state"),
    _int("voice_state_code"),
    _text("voice_state"),
    _int("max_chats"),
    _int("chats"),
    _bigint("elapsed_in_state_ms"),
    _ts("state_started_at"),
    _text("agent_group_id"),
)

agent = sa.Table(
    "agent",
    metadata,
    _text("agent_id", primary_key=True),
    _text("user_name"),
    _text("nickname"),
    _text("email"),
    _text("privilege_group"),
    _text("agent_group_id"),
    _text("agent_group_name"),
    sa.Column("monitored", sa.Boolean(create_constraint=False)),
    _ts("first_seen_at"),
    _ts("last_seen_at"),
)

skill = sa.Table(
    "skill",
    metadata,
    _text("skill_id", primary_key=True),
    _text("skill_name"),
    _ts("first_seen_at"),
    _ts("last_seen_at"),
)

agent_skill = sa.Table(
    "agent_skill",
    metadata,
    _text("agent_id", primary_key=True),
    _text("skill_id", primary_key=True),
    _ts("valid_from", primary_key=True),
    _ts("valid_to"),
)

session_availability_snapshot = sa.Table(
    "session_availability_snapshot",
    metadata,
    _text("snapshot_id", primary_key=True),
    _ts("snapshot_at", nullable=False),
    _text("agent_id", primary_key=True),
    _text("chat"),
    _text("voice"),
)

chat_slots_snapshot = sa.Table(
    "chat_slots_snapshot",
    metadata,
    _text("snapshot_id", primary_key=True),
    _ts("snapshot_at", nullable=False),
    _int("available_slots"),
)

chat_session = sa.Table(
    "chat_session",
    metadata,
    _text("chat_id", primary_key=True),
    _text("chat_session_key"),
    _text("rt_session_id"),
    _text("monitored_by"),
    _ts("first_seen_at"),
    _ts("last_seen_at"),
    _text("state"),
    _ts("start_time"),
    _ts("end_time"),
    _text("agent_id"),
    _text("agent_name"),
    _text("skill_id"),
    _text("skill_name"),
    _text("visitor_id"),
    _text("visit_id"),
    _bigint("last_event_id"),
    _bigint("next_from"),
    _ts("polling_stopped_at"),
    _text("stop_reason"),
    _text("info_json"),
    _int("absent_runs", nullable=False, server_default="0"),
)

chat_event = sa.Table(
    "chat_event",
    metadata,
    _text("chat_id", primary_key=True),
    _bigint("event_id", primary_key=True),
    _text("snapshot_id"),
    _text("event_type"),
    _ts("event_time"),
    _text("source"),
    _text("by"),
    _text("state"),
    _text("text"),
    _int("text_length"),
    _text("raw_json"),
    _ts("ingested_at"),
)

ingest_error = sa.Table(
    "ingest_error",
    metadata,
    _text("error_id", primary_key=True),
    _text("snapshot_id"),
    _text("endpoint"),
    _int("http_status"),
    _text("error"),
    _text("payload"),
    _ts("at"),
    _ts("replayed_at"),
)

TABLES: dict[str, sa.Table] = dict(metadata.tables)

KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(column.name for column in table.primary_key.columns) for name, table in TABLES.items()
}

# Columns an upsert never overwrites: the first sighting stays the first sighting.
KEEP_ON_UPDATE: dict[str, frozenset[str]] = {
    "agent": frozenset({"first_seen_at"}),
    "skill": frozenset({"first_seen_at"}),
    "chat_session": frozenset({"first_seen_at"}),
}

# Columns an upsert overwrites only with a value: a payload that lacks a name must not erase a known one.
COALESCE_ON_UPDATE: dict[str, frozenset[str]] = {
    "skill": frozenset({"skill_name"}),
}

FACT_TABLES: tuple[str, ...] = (
    "agent_state_snapshot",
    "session_availability_snapshot",
    "chat_slots_snapshot",
    "chat_event",
    "snapshot_run",
)
DIMENSION_TABLES: tuple[str, ...] = ("agent", "skill", "agent_skill", "chat_session")

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


def _arrow_type(column: sa.Column) -> pa.DataType:
    if isinstance(column.type, UtcDateTime):
        return TIMESTAMP_TYPE
    if isinstance(column.type, sa.Integer):  # BigInteger is an Integer
        return pa.int64()
    if isinstance(column.type, sa.Boolean):
        return pa.bool_()
    if isinstance(column.type, sa.String):  # Text is a String
        return pa.string()
    raise TypeError(f"no Arrow type for {column.table.name}.{column.name}: {column.type!r}")


ARROW_SCHEMAS: dict[str, pa.Schema] = {
    name: pa.schema([pa.field(column.name, _arrow_type(column)) for column in table.columns])
    for name, table in TABLES.items()
}


def table(name: str) -> sa.Table:
    """The Table called ``name``; the only way table names reach SQL, so an unknown name is an error."""
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"unknown warehouse table: {name!r}") from None


# Derived tables: maintained from the facts by pipelines.reporting.interval_store (migration 0004), not part of the
# data contract's Parquet export, hence a MetaData of their own (TABLES, ARROW_SCHEMAS and retention's key-batched
# deletes stay the contract's tables).
derived_metadata = sa.MetaData()

agent_state_interval_store = sa.Table(
    "agent_state_interval_store",
    derived_metadata,
    _text("agent_id", nullable=False),
    _int("chat_state_code"),
    _text("chat_state"),
    _text("agent_group_id"),
    _ts("started_at"),
    _ts("ended_at"),
    sa.Column("seconds", sa.Double()),
    sa.Column("observed", sa.Boolean(create_constraint=False), nullable=False),
    _bigint("started_at_us", nullable=False),
    _bigint("ended_at_us", nullable=False),
    _bigint("opened_at_us", nullable=False),
)

agent_state_open = sa.Table(
    "agent_state_open",
    derived_metadata,
    _text("agent_id", primary_key=True),
    _int("chat_state_code"),
    _text("chat_state", nullable=False),
    _text("agent_group_id"),
    _ts("started_at"),
    _bigint("started_at_us", nullable=False),
    _bigint("started_shown_us", nullable=False),
    _ts("last_snapshot_at", nullable=False),
    _bigint("last_at_us", nullable=False),
    _bigint("last_reported_start_us", nullable=False),
    _int("last_interval_s", nullable=False),
    _bigint("opened_at_us", nullable=False),
)

DERIVED_TABLES: dict[str, sa.Table] = dict(derived_metadata.tables)
