"""One snapshot run as plain Python: the steps that the Dagster assets call, in the contract's order.

Why a class and not Dagster code: the same steps run under ``snapshot_job``, in benchmarks, in crash trials and in
tests without Dagster, so that what is tested is what is scheduled. The contract's rules live here: SQL is
committed first and Parquet written after; a chat's events and its cursor are committed in one transaction; a
payload that cannot be read becomes a dead letter and the run goes on as ``partial``.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from pipelines import normalize
from pipelines.clock import Clock
from pipelines.liveperson.client import AgentApiClient
from pipelines.liveperson.connect import Connection
from pipelines.liveperson.errors import ApiHttpError, ChatNotFound, LivePersonError, PayloadError
from pipelines.liveperson.records import ChatResource, ChatSessionRef
from pipelines.reporting import interval_store
from pipelines.storage import schema
from pipelines.storage.lock import writer_lock
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse

log = logging.getLogger(__name__)

ABSENT_RUNS_BEFORE_GONE = 3
CHAT_COMMIT_BATCH = 100
CHAT_COMMIT_EVENTS = 20_000
CHAT_RESOURCE_ENDPOINTS = ("chat/{chatId}", "chatSessions")


def new_snapshot_id(at: datetime) -> str:
    """Unique per run and sortable by time, e.g. ``20261127T045300Z-3f9a1c2e``."""
    return f"{at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


@dataclass
class StepResult:
    """What one step stored: rows per table and the dead letters it wrote, for Dagster metadata."""

    rows: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSummary:
    snapshot_id: str
    status: str
    agents: int
    chats: int
    events: int
    errors: int


class SnapshotRunner:
    """Runs the steps of one snapshot against one client, warehouse and Parquet store.

    The caller holds the warehouse writer lock for the whole run (see ``pipelines.storage.lock``).
    """

    def __init__(
        self,
        client: AgentApiClient,
        warehouse: Warehouse,
        parquet: ParquetStore,
        *,
        clock: Clock,
        source: str,
        account_id: str,
        interval_s: int,
        store_chat_text: bool,
        chat_concurrency: int = 8,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.warehouse = warehouse
        self.parquet = parquet
        self.clock = clock
        self.source = source
        self.account_id = account_id
        self.interval_s = interval_s
        self.store_chat_text = store_chat_text
        self.chat_concurrency = chat_concurrency
        self.progress = progress or log.info
        self.snapshot_id: str | None = None
        self.started_at: datetime | None = None
        self.snapshot_at: datetime | None = None
        self.counts = {"agents": 0, "chats": 0, "events": 0, "errors": 0}
        self.steps_succeeded = 0
        self.cursor_regressions = 0
        self.files: dict[str, str] = {}
        self.agents_answered = False
        self.summary: RunSummary | None = None
        self.unexported_dimensions: set[str] = set()

    @classmethod
    def for_connection(
        cls,
        connection: Connection,
        warehouse: Warehouse,
        parquet: ParquetStore,
        *,
        interval_s: int,
        progress: Callable[[str], None] | None = None,
    ) -> SnapshotRunner:
        """A runner reading through ``connection`` with its settings (source, account, chat text, concurrency)."""
        settings = connection.settings
        return cls(
            connection.client,
            warehouse,
            parquet,
            clock=connection.clock,
            source=settings.source,
            account_id=settings.account_id,
            interval_s=interval_s,
            store_chat_text=settings.store_chat_text,
            chat_concurrency=settings.chat_concurrency,
            progress=progress,
        )

    # ------------------------------------------------------------------ run lifecycle
    def begin(self) -> str:
        """Open the run: migrate, clean up after crashes, export what an earlier run left unexported."""
        self.warehouse.migrate()
        # Under the writer lock no other process writes the contract's tables: any temporary file in their folders
        # is a killed run's leftover, whatever its age (the age rule stays for the rest, e.g. reporting partitions).
        self.parquet.remove_temporaries(older_than_s=0.0, tables=(*schema.FACT_TABLES, *schema.DIMENSION_TABLES))
        self.parquet.remove_temporaries()
        self.started_at = self.clock()
        self.snapshot_id = new_snapshot_id(self.started_at)
        recovered = self.export_missing_parquet()
        if recovered:
            self.progress(f"wrote the missing Parquet files of {len(recovered)} earlier run(s): {recovered}")
        with self.warehouse.begin() as conn:
            # Pessimistic until finish(): a run killed mid-way stays honestly "failed" with no finished_at.
            self.warehouse.upsert(
                conn,
                "snapshot_run",
                [
                    {
                        "snapshot_id": self.snapshot_id,
                        "started_at": self.started_at,
                        "finished_at": None,
                        "status": "failed",
                        "source": self.source,
                        "account_id": self.account_id,
                        "interval_s": self.interval_s,
                        "agents": 0,
                        "chats": 0,
                        "events": 0,
                        "errors": 0,
                        "parquet_written_at": None,
                    }
                ],
            )
        self.progress(f"snapshot {self.snapshot_id} started (source {self.source})")
        return self.snapshot_id

    def finish(self, *, crashed: bool = False) -> RunSummary:
        """Close the run with an honest status, then export its row to Parquet and mark the export done."""
        assert self.snapshot_id is not None
        if crashed or self.steps_succeeded == 0:
            status = "failed"
        elif self.counts["errors"]:
            status = "partial"
        else:
            status = "ok"
        finished_at = self.clock()
        with self.warehouse.begin() as conn:
            conn.execute(
                sa.update(schema.TABLES["snapshot_run"])
                .where(schema.TABLES["snapshot_run"].c.snapshot_id == self.snapshot_id)
                .values(finished_at=finished_at, status=status, **self.counts)
            )
            if status != "failed":  # the run's snapshots become visible: the persisted intervals take them, at once
                interval_store.apply_run(conn, self.snapshot_id)
        self.export_dimensions(sorted(self.unexported_dimensions))
        self.export_run_parquet(self.snapshot_id)
        self.progress(
            f"snapshot {self.snapshot_id} {status}: {self.counts['agents']} agents, {self.counts['chats']} chats, "
            f"{self.counts['events']} events, {self.counts['errors']} errors"
        )
        self.summary = RunSummary(self.snapshot_id, status, **self.counts)
        return self.summary

    @property
    def day(self) -> date:
        at = self.snapshot_at or self.started_at
        assert at is not None
        return at.date()

    def monitored_agent_ids(self) -> set[str]:
        """The agent ids of our logins (``agent.monitored``), learnt from each session's ``info``."""
        ids = set()
        for session in self.client.sessions:
            if session.agent_id is None:
                try:
                    self.client.info(session)
                except LivePersonError as error:
                    log.warning("%s: no agent id this run: %s", session.label, error)
                    self.record_failure("info", error)  # an unreadable answer is a dead letter here too
                    continue
            ids.add(session.agent_id)
        return ids

    # ------------------------------------------------------------------ dead letters
    def dead_letter(self, endpoint: str, error: Exception, *, status: int | None, body: bytes) -> None:
        """Keep an unreadable payload whole (secrets and, for chats, text removed) and count it against the run."""
        assert self.snapshot_id is not None
        text = body.decode("utf-8", errors="replace")
        if endpoint.startswith("chat"):
            text = normalize.redact_payload_text(text, self.store_chat_text)
        secrets_now = configured_secrets(self.client)
        text = redact_secrets(text, secrets_now)
        message = redact_secrets(str(error), secrets_now)
        # The run's error ordinal is part of the id: two sessions failing alike (same endpoint, status and body)
        # are two dead letters, as the run's error count says, not one row overwritten by the other.
        ordinal = self.counts["errors"]
        digest = hashlib.sha256(f"{endpoint}\0{status}\0{message}\0{text}\0{ordinal}".encode()).hexdigest()[:16]
        row = {
            "error_id": f"{self.snapshot_id}-{digest}",
            "snapshot_id": self.snapshot_id,
            "endpoint": endpoint,
            "http_status": status,
            "error": message[:2000],
            "payload": text,
            "at": self.clock(),
            "replayed_at": None,
        }
        with self.warehouse.begin() as conn:
            self.warehouse.upsert(conn, "ingest_error", [row])
        self.counts["errors"] += 1
        log.warning("dead letter from %s (HTTP %s): %s", endpoint, status, message)

    def record_failure(self, endpoint: str, error: LivePersonError) -> None:
        if isinstance(error, PayloadError | ApiHttpError):
            self.dead_letter(error.endpoint, error, status=error.status, body=error.body)
        else:
            self.dead_letter(endpoint, error, status=None, body=b"")

    # ------------------------------------------------------------------ steps
    def available_agents(self) -> StepResult:
        """``availableAgents`` -> ``agent_state_snapshot`` and the dimensions ``agent``, ``skill``, ``agent_skill``."""
        assert self.snapshot_id is not None
        result = StepResult()
        try:
            page = self.client.available_agents()
        except LivePersonError as error:
            self.snapshot_at = self.clock()
            self.record_failure("availableAgents", error)
            result.errors = 1
            return result
        self.snapshot_at = self.clock()
        self.agents_answered = True
        monitored = self.monitored_agent_ids()
        snapshot_rows = normalize.agent_state_table(self.snapshot_id, self.snapshot_at, page.agents)
        agent_rows = normalize.agent_dimension_table(page.agents, self.snapshot_at, monitored)
        skill_rows = normalize.skill_table(page.agents, self.snapshot_at)
        with self.warehouse.begin() as conn:
            self.warehouse.upsert(conn, "agent_state_snapshot", snapshot_rows)
            self.warehouse.upsert(conn, "agent", agent_rows)
            self.warehouse.upsert(conn, "skill", skill_rows)
            opened, closed = self.update_memberships(conn, page.agents)
        self.write_fact("agent_state_snapshot", snapshot_rows)
        self.export_dimensions(("agent", "skill", "agent_skill"))
        self.counts["agents"] = snapshot_rows.num_rows
        self.steps_succeeded += 1
        result.rows = {
            "agent_state_snapshot": snapshot_rows.num_rows,
            "agent": agent_rows.num_rows,
            "skill": skill_rows.num_rows,
        }
        result.notes = {
            "memberships_opened": opened,
            "memberships_closed": closed,
            "unknown_state_codes": count_unknown_states(snapshot_rows),
        }
        self.progress(f"{snapshot_rows.num_rows} agents snapshotted")
        return result

    def update_memberships(self, conn: sa.Connection, agents: Sequence[Any]) -> tuple[int, int]:
        """Open a membership row for each new (agent, skill) pair; close it with ``valid_to`` when it disappears."""
        seen_pairs = normalize.agent_skill_pairs(agents)
        seen_agents = {agent.agent_id for agent in agents}
        table = schema.TABLES["agent_skill"]
        open_rows = conn.execute(
            sa.select(table.c.agent_id, table.c.skill_id, table.c.valid_from).where(table.c.valid_to.is_(None))
        ).all()
        open_pairs = {(row.agent_id, row.skill_id) for row in open_rows}
        to_close = [
            row for row in open_rows if row.agent_id in seen_agents and (row.agent_id, row.skill_id) not in seen_pairs
        ]
        for row in to_close:
            conn.execute(
                sa.update(table)
                .where(
                    table.c.agent_id == row.agent_id,
                    table.c.skill_id == row.skill_id,
                    table.c.valid_from == row.valid_from,
                )
                .values(valid_to=self.snapshot_at)
            )
        new_rows = [
            {"agent_id": agent_id, "skill_id": skill_id, "valid_from": self.snapshot_at, "valid_to": None}
            for agent_id, skill_id in sorted(seen_pairs - open_pairs)
        ]
        if new_rows:
            self.warehouse.upsert(conn, "agent_skill", new_rows, update=False)
        return len(new_rows), len(to_close)

    def session_availability(self) -> StepResult:
        """Each monitored login's agent (``info``) and availability -> ``session_availability_snapshot``."""
        assert self.snapshot_id is not None
        result = StepResult()
        rows: list[dict[str, Any]] = []
        for session in self.client.sessions:
            try:
                info = self.client.info(session)
                availability = self.client.availability(session)
            except LivePersonError as error:
                self.record_failure("availability", error)
                result.errors += 1
                continue
            rows.append({"agent_id": info.agent_id, "chat": availability.chat, "voice": availability.voice})
        at = self.snapshot_at or self.clock()
        table = normalize.session_availability_table(self.snapshot_id, at, rows)
        if table.num_rows:
            with self.warehouse.begin() as conn:
                self.warehouse.upsert(conn, "session_availability_snapshot", table)
            self.write_fact("session_availability_snapshot", table)
            self.steps_succeeded += 1
        result.rows = {"session_availability_snapshot": table.num_rows}
        return result

    def chat_slots(self) -> StepResult:
        """``chat/availableSlots`` (whole account) -> ``chat_slots_snapshot``."""
        assert self.snapshot_id is not None
        result = StepResult()
        try:
            slots = self.client.available_slots()
        except LivePersonError as error:
            self.record_failure("chat/availableSlots", error)
            result.errors = 1
            return result
        table = normalize.chat_slots_table(self.snapshot_id, self.snapshot_at or self.clock(), slots)
        with self.warehouse.begin() as conn:
            self.warehouse.upsert(conn, "chat_slots_snapshot", table)
        self.write_fact("chat_slots_snapshot", table)
        self.steps_succeeded += 1
        result.rows = {"chat_slots_snapshot": table.num_rows}
        return result

    def chat_sessions(self) -> StepResult:
        """Each login's ``chatSessions`` -> new and re-seen rows of ``chat_session``; absent chats counted."""
        result = StepResult()
        now = self.clock()
        table = schema.TABLES["chat_session"]
        listed = answered = 0
        for session in self.client.sessions:
            try:
                monitored_by = session.agent_id or self.client.info(session).agent_id
                refs = self.client.chat_sessions(session)
            except LivePersonError as error:
                self.record_failure("chatSessions", error)
                result.errors += 1
                continue
            answered += 1
            listed += len(refs)
            with self.warehouse.begin() as conn:
                self.register_chats(conn, refs, monitored_by, now)
                self.count_absences(conn, table, monitored_by, {ref.chat_id for ref in refs}, now)
        if answered:  # an empty list is an answer: the run read something
            self.steps_succeeded += 1
        # written once per run, after the chat step has moved the cursors too (or by finish() if it did not run)
        self.unexported_dimensions.add("chat_session")
        result.rows = {"chat_session": listed}
        return result

    def register_chats(
        self, conn: sa.Connection, refs: Iterable[ChatSessionRef], monitored_by: str, now: datetime
    ) -> None:
        table = schema.TABLES["chat_session"]
        refs = list(refs)
        if not refs:
            return
        known = {
            row.chat_id
            for row in conn.execute(
                sa.select(table.c.chat_id).where(table.c.chat_id.in_([ref.chat_id for ref in refs]))
            )
        }
        new_rows = [
            {
                "chat_id": ref.chat_id,
                "chat_session_key": ref.chat_session_key,
                "monitored_by": monitored_by,
                "first_seen_at": now,
                "last_seen_at": now,
                "start_time": ref.start_time,
                "next_from": 0,
                "absent_runs": 0,
            }
            for ref in refs
            if ref.chat_id not in known
        ]
        if new_rows:
            self.warehouse.upsert(conn, "chat_session", new_rows, update=False)
        if known:
            conn.execute(
                sa.update(table)
                .where(table.c.chat_id.in_(sorted(known)))
                .values(last_seen_at=now, monitored_by=monitored_by, absent_runs=0)
            )

    def count_absences(
        self, conn: sa.Connection, table: sa.Table, monitored_by: str, listed: set[str], now: datetime
    ) -> None:
        """A chat missing from its agent's ``chatSessions`` for 3 runs in a row stops being polled (``gone``)."""
        open_chats = [
            row.chat_id
            for row in conn.execute(
                sa.select(table.c.chat_id).where(
                    table.c.monitored_by == monitored_by, table.c.polling_stopped_at.is_(None)
                )
            )
        ]
        absent = [chat_id for chat_id in open_chats if chat_id not in listed]
        if not absent:
            return
        conn.execute(sa.update(table).where(table.c.chat_id.in_(absent)).values(absent_runs=table.c.absent_runs + 1))
        conn.execute(
            sa.update(table)
            .where(table.c.chat_id.in_(absent), table.c.absent_runs >= ABSENT_RUNS_BEFORE_GONE)
            .values(polling_stopped_at=now, stop_reason="gone")
        )

    def chat_events(self) -> StepResult:
        """Poll every open chat from its stored cursor; commit events and cursor together, a batch at a time."""
        assert self.snapshot_id is not None
        result = StepResult()
        table = schema.TABLES["chat_session"]
        with self.warehouse.begin() as conn:
            open_chats = conn.execute(
                sa.select(
                    table.c.chat_id, table.c.monitored_by, table.c.next_from, table.c.last_event_id, table.c.state
                )
                .where(table.c.polling_stopped_at.is_(None))
                .order_by(table.c.chat_id)
            ).all()
        by_agent = {session.agent_id: session for session in self.client.sessions if session.agent_id}
        cursors = {row.chat_id: row for row in open_chats}
        requests = [
            (by_agent[row.monitored_by], row.chat_id, int(row.next_from or 0))
            for row in open_chats
            if row.monitored_by in by_agent
        ]
        self.progress(f"polling {len(requests)} open chats")
        batch: list[tuple[str, ChatResource | None, str | None]] = []
        polled = 0
        # Each committed batch goes straight into the run's chat_event file (appearing whole at the end), so a
        # run's events are never all in memory at once; SQL stays first: a batch is written after its commit.
        with cyclic_gc_paused(), self.parquet.fact_writer("chat_event", self.snapshot_id, self.day) as events:
            # polls go out in waves of two per polling thread; a batch is committed at CHAT_COMMIT_BATCH chats or
            # CHAT_COMMIT_EVENTS events, whichever comes first: memory holds about one batch and one wave (a chat
            # of 1,000 events is ~1.3 MB decoded), and a poll with few new events still commits (fsyncs) rarely
            wave = max(1, min(CHAT_COMMIT_BATCH, 2 * self.chat_concurrency))
            polls = self.client.poll_chats(requests, self.chat_concurrency, wave=wave)
            batch_events = 0
            for (_session, chat_id, _from), outcome in polls:
                polled += 1
                if isinstance(outcome, ChatNotFound):
                    batch.append((chat_id, None, "not_found"))
                elif isinstance(outcome, LivePersonError):
                    self.record_failure(f"chat/{chat_id}", outcome)
                    result.errors += 1
                elif isinstance(outcome, Exception):
                    raise outcome
                else:
                    batch.append((chat_id, outcome, None))
                    batch_events += len(outcome.events)
                if len(batch) >= CHAT_COMMIT_BATCH or batch_events >= CHAT_COMMIT_EVENTS:
                    events.write(self.commit_chat_batch(batch, cursors))
                    batch, batch_events = [], 0
                    self.progress(f"polled {polled}/{len(requests)} chats")
            if batch:
                events.write(self.commit_chat_batch(batch, cursors))
        if events.path is not None:
            self.files["chat_event"] = events.path
        self.export_dimensions(("chat_session",))
        self.counts["chats"] = polled
        self.counts["events"] = events.rows
        if polled > result.errors:  # no open chats is no read: a run that read nothing else still fails
            self.steps_succeeded += 1
        result.rows = {"chat_event": events.rows, "chat_session": polled}
        result.notes = {"cursor_regressions": self.cursor_regressions}
        return result

    def commit_chat_batch(
        self, batch: Sequence[tuple[str, ChatResource | None, str | None]], cursors: dict[str, Any]
    ) -> pa.Table:
        """Store a batch of polled chats: their new events and their cursors in ONE transaction."""
        assert self.snapshot_id is not None
        now = self.clock()
        all_events = []
        updates: list[dict[str, Any]] = []
        for chat_id, resource, stop_reason in batch:
            previous = cursors[chat_id]
            if resource is None:
                updates.append({"chat_id": chat_id, "polling_stopped_at": now, "stop_reason": stop_reason})
                continue
            next_from = int(previous.next_from or 0)
            fresh = [event for event in resource.events if event.event_id >= next_from]
            all_events.extend(fresh)
            last_event_id = max((event.event_id for event in fresh), default=previous.last_event_id)
            new_next = max(next_from, (last_event_id + 1) if last_event_id is not None else 0)
            if resource.next_from is not None and resource.next_from < next_from:
                self.cursor_regressions += 1
            update = {"chat_id": chat_id, "last_event_id": last_event_id, "next_from": new_next, "last_seen_at": now}
            update.update(self.chat_info_columns(resource))
            was_ended = previous.state == "ended"
            if was_ended and not fresh:
                update.update(polling_stopped_at=now, stop_reason="ended")
            updates.append(update)
        events = normalize.chat_event_table(self.snapshot_id, now, all_events, self.store_chat_text)
        with self.warehouse.begin() as conn:
            self.warehouse.upsert(conn, "chat_event", events, update=False)
            self.warehouse.update_by_key(conn, "chat_session", updates)  # one executemany per set of columns
        return events

    def chat_info_columns(self, resource: ChatResource) -> dict[str, Any]:
        """The ``chat_session`` columns that the chat's info (and its events) tell, personal text removed."""
        return normalize.chat_session_columns(resource, lambda raw: normalize.chat_info_json(raw, self.store_chat_text))

    # ------------------------------------------------------------------ Parquet export
    def write_fact(self, table: str, rows: pa.Table) -> None:
        """This run's file of a fact table, under the UTC date of its ``snapshot_at``."""
        assert self.snapshot_id is not None
        self.files[table] = self.parquet.write_fact(table, self.snapshot_id, self.day, rows)

    def export_dimensions(self, tables: Iterable[str]) -> None:
        tables = list(tables)
        if not tables:
            return
        with self.warehouse.engine.connect() as conn:
            for name in tables:
                self.parquet.write_dimension(name, self.warehouse.read_table(conn, name))
        self.unexported_dimensions.difference_update(tables)

    def export_run_parquet(self, snapshot_id: str) -> None:
        """Write the run's ``snapshot_run`` file, then record that every export of the run is done."""
        written_at = self.clock()
        run_table = schema.TABLES["snapshot_run"]
        with self.warehouse.engine.connect() as conn:
            row = self.warehouse.read_table(conn, "snapshot_run", {"snapshot_id": snapshot_id})
        if row.num_rows == 0:
            return
        row = row.set_column(
            row.schema.get_field_index("parquet_written_at"),
            "parquet_written_at",
            pa.array([written_at], type=row.schema.field("parquet_written_at").type),
        )
        day = row.column("started_at")[0].as_py().date()
        self.parquet.write_fact("snapshot_run", snapshot_id, day, row)
        with self.warehouse.begin() as conn:
            conn.execute(
                sa.update(run_table).where(run_table.c.snapshot_id == snapshot_id).values(parquet_written_at=written_at)
            )

    def export_missing_parquet(self) -> list[str]:
        """Find committed runs whose Parquet export never completed (a crash) and write their files now."""
        run_table = schema.TABLES["snapshot_run"]
        with self.warehouse.engine.connect() as conn:
            pending = [
                row.snapshot_id
                for row in conn.execute(
                    sa.select(run_table.c.snapshot_id)
                    .where(run_table.c.parquet_written_at.is_(None))
                    .order_by(run_table.c.snapshot_id)
                )
            ]
        for snapshot_id in pending:
            with self.warehouse.engine.connect() as conn:
                for name in schema.FACT_TABLES:
                    if name == "snapshot_run":
                        continue
                    rows = self.warehouse.read_table(conn, name, {"snapshot_id": snapshot_id})
                    if rows.num_rows:
                        day = rows.column("snapshot_at" if "snapshot_at" in rows.column_names else "ingested_at")
                        self.parquet.write_fact(name, snapshot_id, run_day(day), rows)
            with self.warehouse.engine.connect() as conn:
                finished = conn.execute(
                    sa.select(run_table.c.finished_at).where(run_table.c.snapshot_id == snapshot_id)
                ).scalar()
            if finished is None:
                with self.warehouse.begin() as conn:
                    conn.execute(
                        sa.update(run_table)
                        .where(run_table.c.snapshot_id == snapshot_id)
                        .values(finished_at=None, status="failed")
                    )
            self.export_run_parquet(snapshot_id)
        if pending:
            self.export_dimensions(schema.DIMENSION_TABLES)
        return pending


def run_snapshot(
    connection: Connection,
    warehouse: Warehouse,
    parquet: ParquetStore,
    *,
    interval_s: int = 60,
    lock_wait_s: float = 10.0,
) -> RunSummary | None:
    """One whole run outside Dagster (benchmarks, crash trials, soak), under the warehouse writer lock.

    The steps and their order are those of ``snapshot_job``; returns None when another run holds the lock.
    """
    with writer_lock(warehouse, lock_wait_s) as acquired:
        if not acquired:
            log.warning("skipping this snapshot: another run holds the warehouse writer lock")
            return None
        runner = SnapshotRunner.for_connection(connection, warehouse, parquet, interval_s=interval_s)
        runner.begin()
        try:
            for step in (
                runner.available_agents,
                runner.session_availability,
                runner.chat_slots,
                runner.chat_sessions,
                runner.chat_events,
            ):
                step()
        except BaseException:
            runner.finish(crashed=True)
            raise
        return runner.finish()


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a run's events stream through (restored after, even on error).

    Each event is a few container objects (its decoded dict, its record, its row tuple): millions per run, which
    trigger a collection every 700 allocations and full collections that scan the whole heap; the data is
    acyclic and freed by reference counting anyway. Measured (bench/stages.py): a quarter of the CPU per event.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def configured_secrets(client: AgentApiClient) -> tuple[str, ...]:
    """Every secret value this run knows of, so that none can reach a dead letter."""
    values = set()
    for credentials in client.settings.logins:
        values.update(v for v in (credentials.password, credentials.bearer) if v)
    for session in client.sessions:
        values.update(session.secret_values())
    return tuple(sorted(values, key=len, reverse=True))


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "[secret]")
    return text


def run_day(column: pa.ChunkedArray) -> date:
    """The UTC date a fact file belongs to: that of its snapshot time."""
    return column[0].as_py().date()


def count_unknown_states(snapshot_rows: pa.Table) -> int:
    states = snapshot_rows.column("chat_state").to_pylist()
    return sum(1 for state in states if state and state.startswith("unknown:"))
