"""Retention: drop warehouse rows and Parquet day folders older than ``RETENTION_DAYS``, in one place.

Why: a snapshot every minute grows the warehouse and the Parquet tree without bound. Unset (the default), nothing
is ever deleted. ``RETENTION_DAYS=N`` keeps today and the N full UTC days before it: the cutoff is midnight UTC N
days ago, so that SQL rows and Parquet ``date=`` folders (one per UTC day) are cut at the same instant.

What goes, table by table (each by the time that decides its Parquet day, so both stores agree):

- ``agent_state_snapshot``, ``session_availability_snapshot``, ``chat_slots_snapshot``: ``snapshot_at``;
- ``chat_event``: ``ingested_at``, i.e. the day of the run that stored it, which is also its Parquet partition.
  Not ``event_time``: that is the API's clock (absent for some events, and days old for a long chat first seen
  late), so deleting by it would leave SQL and Parquet disagreeing; the cursor lives in ``chat_session``, so
  deleting old events never makes a chat be polled again. (A run that straddles midnight files its events under
  its snapshot's day while their ``ingested_at`` is the next: SQL keeps those few rows a day longer than Parquet);
- ``snapshot_run``: ``started_at``; ``ingest_error``: ``at``;
- ``agent_skill``: closed memberships (``valid_to`` set and older); open ones stay whatever their age;
- ``chat_session``: chats whose polling stopped before the cutoff and that have no event left (deleted after the
  events, in the same call); dimensions ``agent`` and ``skill`` are small and kept;
- the persisted intervals ``agent_state_interval_store``: rows that ended by the cutoff (an interval spanning it
  stays whole); ``agent_state_open``: agents last seen before it.

Rows are deleted by parameterized SQLAlchemy Core statements in batches of ``DELETE_BATCH_ROWS`` keys, one
transaction each, so that neither dialect holds a huge transaction (SQLite's single writer would block readers'
checkpoints for its length). SQL goes first: a crash after it leaves only extra Parquet days, which the next call
drops; the other order could leave SQL rows whose files are gone. A day's Parquet folder is renamed into
``PARQUET_ROOT/.retention`` (one atomic step: a reader sees the whole day or none of it), then deleted; leftovers
of a crash there are deleted by the next call. Reporting partitions (``PARQUET_ROOT/<view>/date=...``) go by the
same cutoff. The caller holds the warehouse writer lock (``pipelines.storage.lock``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pyarrow.fs as pafs
import sqlalchemy as sa

from pipelines.clock import Clock, system_clock
from pipelines.reporting import interval_store
from pipelines.reporting.daily import SCHEMAS as REPORT_SCHEMAS
from pipelines.storage import schema
from pipelines.storage.compaction import partition_days, recover_staging
from pipelines.storage.dirswap import fsync_directory, remove_tree
from pipelines.storage.parquet import ParquetStore, safe_path_component
from pipelines.storage.warehouse import Warehouse

log = logging.getLogger(__name__)

RETENTION_ENV = "RETENTION_DAYS"
MAX_RETENTION_DAYS = 36_600  # a century: anything larger is a typo, not a policy
DELETE_BATCH_ROWS = 20_000
STAGING = ".retention"

# Folders holding daily ``date=`` partitions: the fact tables and the reporting views.
PARTITIONED_FOLDERS: tuple[str, ...] = (*schema.FACT_TABLES, *sorted(REPORT_SCHEMAS))


class RetentionConfigError(ValueError):
    """``RETENTION_DAYS`` is set to something that is not a whole number of days from 1 up."""


@dataclass(frozen=True)
class RetentionResult:
    """What one retention pass deleted: rows per warehouse table and ``date=`` folders per Parquet folder.

    ``cutoff`` None: retention is off (``RETENTION_DAYS`` unset) and nothing was deleted."""

    cutoff: datetime | None
    rows: dict[str, int] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)


def retention_days_from_env(env: Mapping[str, str] | None = None) -> int | None:
    """``RETENTION_DAYS`` as a number of days; None when unset or empty (keep everything)."""
    raw = (os.environ if env is None else env).get(RETENTION_ENV, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise RetentionConfigError(
            f"{RETENTION_ENV}={raw!r} is not a whole number of days (e.g. 90); unset it to keep everything"
        )
    days = int(raw)
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise RetentionConfigError(
            f"{RETENTION_ENV}={raw!r} must be between 1 and {MAX_RETENTION_DAYS} days; unset it to keep everything"
        )
    return days


def retention_cutoff(days: int, now: datetime) -> datetime:
    """Midnight UTC ``days`` days before ``now``'s UTC day: what is older goes, today and ``days`` full days stay."""
    if days < 1:
        raise RetentionConfigError("retention must keep at least 1 day")
    today = now.astimezone(UTC).date()
    return datetime.combine(today - timedelta(days=days), time(0), tzinfo=UTC)


def apply_retention(
    warehouse: Warehouse,
    parquet: ParquetStore,
    *,
    days: int | None,
    clock: Clock = system_clock,
    batch_rows: int = DELETE_BATCH_ROWS,
) -> RetentionResult:
    """Delete everything older than ``days`` full UTC days (see the module's docstring); ``days`` None deletes
    nothing. Returns the counts, also logged per table. The caller holds the warehouse writer lock."""
    if days is None:
        log.info("retention off (%s unset): keeping everything", RETENTION_ENV)
        return RetentionResult(cutoff=None)
    cutoff = retention_cutoff(days, clock())
    rows = delete_old_rows(warehouse, cutoff, batch_rows=batch_rows)
    partitions = drop_old_partitions(parquet, cutoff.date())
    for table, count in rows.items():
        log.info("retention: deleted %d %s rows older than %s", count, table, cutoff.isoformat())
    for folder, count in partitions.items():
        log.info("retention: dropped %d Parquet day(s) of %s before %s", count, folder, cutoff.date())
    return RetentionResult(cutoff, rows, partitions)


def delete_old_rows(warehouse: Warehouse, cutoff: datetime, *, batch_rows: int = DELETE_BATCH_ROWS) -> dict[str, int]:
    """Warehouse rows older than ``cutoff``, per table (every table listed, zero included), in batches."""
    t = schema.TABLES
    conditions: list[tuple[str, sa.ColumnElement[bool]]] = [
        ("chat_event", t["chat_event"].c.ingested_at < cutoff),
        ("agent_state_snapshot", t["agent_state_snapshot"].c.snapshot_at < cutoff),
        ("session_availability_snapshot", t["session_availability_snapshot"].c.snapshot_at < cutoff),
        ("chat_slots_snapshot", t["chat_slots_snapshot"].c.snapshot_at < cutoff),
        ("ingest_error", t["ingest_error"].c.at < cutoff),
        ("snapshot_run", t["snapshot_run"].c.started_at < cutoff),
        ("agent_skill", t["agent_skill"].c.valid_to.is_not(None) & (t["agent_skill"].c.valid_to < cutoff)),
        (  # after chat_event: a chat goes once its events are gone
            "chat_session",
            t["chat_session"].c.polling_stopped_at.is_not(None)
            & (t["chat_session"].c.polling_stopped_at < cutoff)
            & ~sa.exists().where(t["chat_event"].c.chat_id == t["chat_session"].c.chat_id),
        ),
    ]
    counts = {name: _delete_in_batches(warehouse, name, condition, batch_rows) for name, condition in conditions}
    counts.update(_delete_old_intervals(warehouse, cutoff))
    return counts


def _delete_old_intervals(warehouse: Warehouse, cutoff: datetime) -> dict[str, int]:
    """The persisted intervals (``reporting.interval_store``) that ended by the cutoff and the open state of agents
    last seen before it, a day of intervals per transaction (oldest first). An interval spanning the cutoff stays
    whole, so the first kept day reports as before."""
    store = schema.agent_state_interval_store
    cutoff_us = interval_store.epoch_us(cutoff)
    with warehouse.engine.connect() as conn:
        oldest = conn.execute(sa.select(sa.func.min(store.c.ended_at_us))).scalar()
    day_us = 86_400_000_000
    bounds = [] if oldest is None else list(range(int(oldest) + day_us, cutoff_us, day_us))
    totals = {store.name: 0, schema.agent_state_open.name: 0}
    for bound in [*bounds, cutoff_us]:
        with warehouse.begin() as conn:
            for name, count in interval_store.delete_before(conn, bound).items():
                totals[name] += count
    return totals


def _delete_in_batches(warehouse: Warehouse, name: str, condition: sa.ColumnElement[bool], batch_rows: int) -> int:
    """``DELETE ... WHERE key IN (SELECT key ... WHERE condition LIMIT n)`` until nothing matches; a transaction
    per batch. Row-value ``IN`` works on PostgreSQL and SQLite (3.15+) alike."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    table = schema.table(name)
    keys = [table.c[key] for key in schema.KEYS[name]]
    target = keys[0] if len(keys) == 1 else sa.tuple_(*keys)
    statement = sa.delete(table).where(target.in_(sa.select(*keys).where(condition).limit(batch_rows)))
    total = 0
    while True:
        with warehouse.begin() as conn:
            deleted = conn.execute(statement).rowcount
        total += deleted
        if deleted < batch_rows:
            return total


def drop_old_partitions(
    parquet: ParquetStore, before: date, folders: Iterable[str] = PARTITIONED_FOLDERS
) -> dict[str, int]:
    """Remove every ``date=`` folder older than ``before`` under each of ``folders``; counts per folder."""
    if parquet.local:
        recover_staging(parquet)  # settle an interrupted compaction first, so that no staging resurrects a day
        remove_tree(os.path.join(parquet.root, STAGING))  # a crashed retention's renamed-away days
    dropped: dict[str, int] = {}
    for folder in folders:
        old = [day for day in _days(parquet, folder) if day < before]
        for day in old:
            _drop_day(parquet, folder, day)
        dropped[folder] = len(old)
    if parquet.local:
        remove_tree(os.path.join(parquet.root, STAGING))
    return dropped


def _days(parquet: ParquetStore, folder: str) -> list[date]:
    if parquet.local:
        return partition_days(parquet, folder)
    selector = pafs.FileSelector(f"{parquet.root}/{safe_path_component(folder)}", allow_not_found=True)
    days = []
    for info in parquet.fs.get_file_info(selector):
        if info.type == pafs.FileType.Directory and info.base_name.startswith("date="):
            try:
                days.append(date.fromisoformat(info.base_name.removeprefix("date=")))
            except ValueError:
                continue
    return sorted(days)


def _drop_day(parquet: ParquetStore, folder: str, day: date) -> None:
    """Locally: rename the day out of the table in one step, then delete it. An object store has no rename of a
    prefix: its objects are deleted one by one (a reader may briefly see part of the day)."""
    name = f"date={day.isoformat()}"
    live = f"{parquet.root}/{safe_path_component(folder)}/{name}"
    if not parquet.local:
        parquet.fs.delete_dir(live)
        return
    retired_parent = os.path.join(parquet.root, STAGING, folder)
    os.makedirs(retired_parent, exist_ok=True)
    retired = os.path.join(retired_parent, f"{name}-{uuid.uuid4().hex[:8]}")
    os.rename(live, retired)
    fsync_directory(os.path.dirname(live))
    remove_tree(retired)
