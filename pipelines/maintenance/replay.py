"""Dead-letter replay: after a parser fix, land what the ``ingest_error`` payloads now read, as the original run would
have, and mark them ``replayed_at``.

Why: a payload the parser rejects is kept whole (``SnapshotRunner.dead_letter``) precisely so that its data is not
lost when the parser learns the shape. Replay goes through the live path: ``decode_body`` sniffing JSON vs XML,
the endpoint's parser, ``normalize`` and ``Warehouse.upsert`` (see ``replay_land`` for what each endpoint lands),
stamped with the dead letter's ``snapshot_id`` and that run's ``snapshot_at``. Keys with on-conflict-do-nothing
make it idempotent against itself and against live runs; chat cursors only move forward.

Per dead letter, ONE transaction holds its rows, its cursor and its ``replayed_at`` (from the injectable clock).
A payload that still fails keeps ``replayed_at`` null and its original ``error``: that column says what the live
run met, which an operator diagnosing the parser needs; the current reason goes to the summary and the log instead
(a replay every hour would otherwise rewrite history with the same message, or lose the first one).

Replay is a writer: it holds the warehouse writer lock like a snapshot run, a batch at a time, and lets go between
batches so that a waiting snapshot run gets in (a backlog after a parser fix must not make the minute's snapshots
skip); when a run keeps the lock past ``lock_wait_s``, replay stops and the rest waits for its next call.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from pipelines.clock import Clock, system_clock
from pipelines.liveperson.errors import PayloadError
from pipelines.maintenance.replay_land import DeadLetter, NotReplayable, RunStamp, interpret
from pipelines.maintenance.replay_parquet import ParquetRefresh
from pipelines.storage import schema
from pipelines.storage.lock import writer_lock
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse

log = logging.getLogger(__name__)

BATCH_SIZE = 200
LOCK_WAIT_S = 10.0
LOCK_YIELD_S = 0.25  # between batches: longer than the lock's 0.1 s poll, so a waiting run takes it
FAILURES_LISTED = 50
# The fact tables whose rows carry a run's snapshot_at (any one gives the run's time).
_TIMED_FACTS = ("agent_state_snapshot", "session_availability_snapshot", "chat_slots_snapshot")


@dataclass(frozen=True)
class Failure:
    """A dead letter that did not land this time, and why."""

    error_id: str
    endpoint: str
    reason: str


@dataclass
class ReplaySummary:
    """What one replay did; ``still_failing`` counts by reason (the error's message up to its first colon)."""

    examined: int = 0
    replayed: int = 0
    still_failing: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    cursors_advanced: int = 0
    parquet_files: int = 0
    parquet_recompacted: list[str] = field(default_factory=list)
    parquet_deferred: list[str] = field(default_factory=list)
    parquet_left_to_export: list[str] = field(default_factory=list)
    lock_busy: bool = False
    failures: list[Failure] = field(default_factory=list)

    @property
    def failing(self) -> int:
        return sum(self.still_failing.values())

    def headline(self) -> str:
        """One line an operator reads first."""
        if self.lock_busy and not self.examined:
            return "replay skipped: another run holds the warehouse writer lock"
        reasons = ", ".join(f"{reason}: {n}" for reason, n in self.still_failing.most_common())
        line = f"replayed {self.replayed} of {self.examined} dead letters; {self.failing} still fail"
        line += f" ({reasons})" if reasons else ""
        rows = ", ".join(f"{table} {n}" for table, n in sorted(self.rows.items()) if n)
        line += f"; rows landed: {rows or 'none'}"
        if self.lock_busy:
            line += "; stopped early: another run holds the writer lock (the rest waits for the next replay)"
        return line


def replay_dead_letters(
    warehouse: Warehouse,
    parquet: ParquetStore,
    *,
    store_chat_text: bool,
    clock: Clock = system_clock,
    batch_size: int = BATCH_SIZE,
    lock_wait_s: float = LOCK_WAIT_S,
    progress: Callable[[str], None] | None = None,
) -> ReplaySummary:
    """Replay every dead letter with ``replayed_at`` null, oldest run first, a batch per writer-lock hold."""
    return Replayer(warehouse, parquet, store_chat_text=store_chat_text, clock=clock, progress=progress).run(
        batch_size=batch_size, lock_wait_s=lock_wait_s
    )


class Replayer:
    """One replay pass over the unreplayed dead letters."""

    def __init__(
        self,
        warehouse: Warehouse,
        parquet: ParquetStore,
        *,
        store_chat_text: bool,
        clock: Clock = system_clock,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.parquet = parquet
        self.store_chat_text = store_chat_text
        self.clock = clock
        self.progress = progress or log.info
        self.summary = ReplaySummary()
        self.refresh = ParquetRefresh(warehouse, parquet)
        self._stamps: dict[str, RunStamp] = {}

    def run(self, *, batch_size: int = BATCH_SIZE, lock_wait_s: float = LOCK_WAIT_S) -> ReplaySummary:
        after = ""  # keyset over error_id: snapshot ids sort by time, so older runs replay first
        while True:
            with writer_lock(self.warehouse, lock_wait_s) as acquired:
                if not acquired:
                    self.summary.lock_busy = True
                    log.warning("replay: another run holds the warehouse writer lock; stopping here")
                    break
                if not after:
                    self.warehouse.migrate()
                letters = self.pending(after, batch_size)
                for letter in letters:
                    self.replay(letter)
                self.refresh.flush()
            if len(letters) < batch_size:
                break
            after = letters[-1].error_id
            self.progress(f"replay: {self.summary.examined} dead letters examined, {self.summary.replayed} landed")
            time.sleep(LOCK_YIELD_S)  # let a waiting snapshot run take the lock before the next batch
        return self.finish()

    def pending(self, after: str, limit: int) -> list[DeadLetter]:
        errors = schema.TABLES["ingest_error"]
        columns = ("error_id", "snapshot_id", "endpoint", "http_status", "payload", "at")
        query = (
            sa.select(*(errors.c[name] for name in columns))
            .where(errors.c.replayed_at.is_(None), errors.c.error_id > after)
            .order_by(errors.c.error_id)
            .limit(limit)
        )
        with self.warehouse.engine.connect() as conn:
            return [
                DeadLetter(
                    row.error_id, row.snapshot_id, row.endpoint or "", row.http_status, row.payload or "", row.at
                )
                for row in conn.execute(query)
            ]

    def replay(self, letter: DeadLetter) -> None:
        """Land one dead letter and mark it, in one transaction; or count why it still fails."""
        self.summary.examined += 1
        try:
            landing = interpret(letter, store_text=self.store_chat_text)
            with self.warehouse.begin() as conn:
                stamp = self.stamp(conn, letter)
                landed = landing.land(conn, self.warehouse, stamp, letter)
                changed = {table for table in landed.fact_tables if landed.rows.get(table)}  # files to re-write
                self.refresh.claim(conn, stamp.snapshot_id, stamp.day, changed, landed.dimension_tables)
                errors = schema.TABLES["ingest_error"]
                conn.execute(
                    sa.update(errors)
                    .where(errors.c.error_id == letter.error_id, errors.c.replayed_at.is_(None))
                    .values(replayed_at=self.clock())
                )
        except (PayloadError, NotReplayable) as error:
            reason = error.reason if isinstance(error, PayloadError) else str(error)
            self.summary.still_failing[reason.split(":", 1)[0]] += 1
            if len(self.summary.failures) < FAILURES_LISTED:
                self.summary.failures.append(Failure(letter.error_id, letter.endpoint, reason[:300]))
            log.info("replay: %s (%s) still fails: %s", letter.error_id, letter.endpoint, reason[:300])
            return
        self.summary.replayed += 1
        self.summary.rows.update(landed.rows)
        self.summary.cursors_advanced += landed.cursor_advanced

    def stamp(self, conn: sa.Connection, letter: DeadLetter) -> RunStamp:
        """The run's ``snapshot_at``: from its stored facts; failing those (its ``availableAgents`` read failed, when
        a live run takes that time), from its first dead letter, written at that same moment."""
        known = self._stamps.get(letter.snapshot_id)
        if known is not None:
            return known
        at: datetime | None = None
        for name in _TIMED_FACTS:
            table = schema.TABLES[name]
            at = conn.execute(
                sa.select(table.c.snapshot_at).where(table.c.snapshot_id == letter.snapshot_id).limit(1)
            ).scalar()
            if at is not None:
                break
        if at is None:
            errors = schema.TABLES["ingest_error"]
            first = sa.select(sa.func.min(errors.c.at)).where(errors.c.snapshot_id == letter.snapshot_id)
            at = conn.execute(first).scalar()
        stamp = RunStamp(letter.snapshot_id, at or letter.at)
        self._stamps[letter.snapshot_id] = stamp
        return stamp

    def finish(self) -> ReplaySummary:
        summary = self.summary
        summary.parquet_files = len(self.refresh.files)
        summary.parquet_recompacted = sorted(self.refresh.recompacted)
        summary.parquet_deferred = sorted(self.refresh.deferred)
        summary.parquet_left_to_export = sorted(self.refresh.left_to_export)
        self.progress(summary.headline())
        if summary.parquet_deferred:
            log.warning("replay: Parquet partitions lacking replayed rows (re-export): %s", summary.parquet_deferred)
        return summary
