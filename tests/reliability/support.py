"""Shared pieces of the reliability suite: a fast pipeline on a pinned simulator, fault mixes and counters, and the
comparisons with ground truth and between warehouses.

Nothing here mocks HTTP or SQL: the pipeline talks to the real simulator over HTTP and to real databases. The only
instrumentation is ``FaultLedger``, which records each fault the simulator decided to inject (its own RNG), so that
dead letters can be counted against what was injected.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa

from pipelines.liveperson.client import AgentApiClient
from pipelines.liveperson.connect import Connection, connect
from pipelines.storage import schema
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse

FULL = os.environ.get("RELIABILITY_FULL", "").strip().lower() in ("1", "true", "yes", "on")
LOGINS = 6
# Endpoints whose every unreadable 200 answer becomes exactly one dead letter of that endpoint.
DEAD_LETTERED_READS = (
    "availableAgents",
    "chat/availableSlots",
    "chatSessions",
    "chat/{chatId}",
    "availability",
    "info",
)


def fast_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """Settings for the embedded simulator with retry pauses shrunk (LivePerson's 5/10/15 s become 10/20/30 ms)."""
    return {
        "LP_STATE_DIR": str(state_dir),
        "LP_SIMULATOR_LOGINS": str(LOGINS),
        "LP_RETRY_BASE_S": "0.01",
        "LP_TIMEOUT_S": "20",
        **extra,
    }


@contextmanager
def pipeline_connection(simulator: Any, state_dir: Path, **extra: str) -> Iterator[Connection]:
    """``connect(env, simulator=...)`` with the 2 s real-time spacing of ``chatSessions`` calls lifted: runs follow
    each other within milliseconds of real time here, while simulated minutes pass between them."""
    with connect(fast_env(state_dir, **extra), simulator=simulator) as connection:
        connection.client = AgentApiClient(connection.settings, connection.clock, chat_sessions_interval_s=0.0)
        try:
            yield connection
        finally:
            connection.client.close()


def faulty_day_faults(simulator: Any, *, spikes_ms: tuple[float, float]) -> None:
    """The issue's mix, all at once on every endpoint. Order matters: the first rule that fires is the fault."""
    faults = simulator.faults
    faults.set(endpoint="*", kind="expire_session", every_minutes=20)
    faults.set(endpoint="*", kind="server_error", probability=0.05, status=503)
    faults.set(endpoint="*", kind="rate_limit", probability=0.02, retry_after=1)
    faults.set(endpoint="*", kind="truncate", probability=0.01)
    faults.set(endpoint="*", kind="html", probability=0.005, status=200)  # a proxy's page with 200: unreadable
    faults.set(endpoint="*", kind="xml", probability=0.005)
    faults.set(endpoint="*", kind="latency", probability=1.0, ms=0, spike_probability=0.01, spike_ms=spikes_ms)


class FaultLedger:
    """Counts the faults the simulator actually injected, by (endpoint, kind), by wrapping ``Faults.decide``."""

    def __init__(self, simulator: Any) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        faults = simulator.faults
        original = faults.decide

        def decide(endpoint: str, now: datetime, session_opened: datetime | None = None) -> Any:
            decision = original(endpoint, now, session_opened)
            if decision.fault is not None:
                with self._lock:
                    self.counts[(endpoint, decision.fault.kind)] += 1
            if decision.latency_s:
                with self._lock:
                    self.counts[(endpoint, "latency_spike")] += 1
            return decision

        faults.decide = decide

    def by_kind(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (_endpoint, kind), n in self.counts.items():
            totals[kind] += n
        return dict(sorted(totals.items()))

    def unreadable(self, endpoint: str) -> int:
        """Injected answers that can only be dead-lettered: truncated bodies and HTML pages with status 200."""
        return self.counts[(endpoint, "truncate")] + self.counts[(endpoint, "html")]


def count(warehouse: Warehouse, table: str) -> int:
    with warehouse.engine.connect() as db:
        return db.execute(sa.select(sa.func.count()).select_from(schema.TABLES[table])).scalar_one()


def stored_events(warehouse: Warehouse) -> dict[str, list[int]]:
    events = schema.TABLES["chat_event"]
    by_chat: dict[str, list[int]] = defaultdict(list)
    with warehouse.engine.connect() as db:
        for chat_id, event_id in db.execute(sa.select(events.c.chat_id, events.c.event_id)):
            by_chat[chat_id].append(int(event_id))
    return by_chat


def compare_with_truth(simulator: Any, warehouse: Warehouse, *, exact: bool) -> dict[str, Any]:
    """Stored events against the simulator's truth, chat by chat.

    ``exact``: the events stored equal every event that happened by the chat's last poll (``last_seen_at``; for a
    stopped chat, when polling stopped). Otherwise (mid-way through faults, when a chat's latest poll may have been
    dead-lettered): what is stored is a gap-free prefix of the truth that ends where the cursor says.
    """
    sessions = schema.TABLES["chat_session"]
    with warehouse.engine.connect() as db:
        chats = db.execute(
            sa.select(
                sessions.c.chat_id,
                sessions.c.last_seen_at,
                sessions.c.polling_stopped_at,
                sessions.c.stop_reason,
                sessions.c.next_from,
                sessions.c.last_event_id,
            )
        ).all()
    stored = stored_events(warehouse)
    figures: dict[str, Any] = {
        "chats": len(chats),
        "events": sum(len(v) for v in stored.values()),
        "lost": 0,
        "duplicated": 0,
        "unknown": 0,
        "cursor_ahead": 0,
        "cursor_behind": 0,
        "bad_chats": [],
    }
    known = {row.chat_id for row in chats}
    figures["events_of_unknown_chats"] = sum(len(v) for k, v in stored.items() if k not in known)
    for row in chats:
        mine = stored.get(row.chat_id, [])
        figures["duplicated"] += len(mine) - len(set(mine))
        served = [int(e["@id"]) for e in simulator.truth.chat_events(row.chat_id)]
        until = row.polling_stopped_at or row.last_seen_at
        by_then = [int(e["@id"]) for e in simulator.truth.chat_events(row.chat_id, until=_aware(until))]
        have = set(mine)
        figures["unknown"] += len(have - set(served))
        expected = by_then if exact else [i for i in served if i < int(row.next_from or 0)]
        lost = [i for i in expected if i not in have]
        figures["lost"] += len(lost)
        top = max(have) if have else None
        if int(row.next_from or 0) > (top + 1 if top is not None else 0):
            figures["cursor_ahead"] += 1  # the cursor promises events that are not stored
        if int(row.next_from or 0) < (top + 1 if top is not None else 0):
            figures["cursor_behind"] += 1
        if lost or len(mine) != len(have) or have - set(served):
            figures["bad_chats"].append({"chat_id": row.chat_id, "lost": lost[:10], "stop": row.stop_reason})
    return figures


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------- comparing two warehouses / Parquet roots
# Columns stamped by the pipeline's clock or derived from a run's random id: not data.
STAMP_COLUMNS = {
    "snapshot_id",
    "ingested_at",
    "started_at",
    "finished_at",
    "parquet_written_at",
    "first_seen_at",
    "last_seen_at",
    "at",
    "error_id",
}
DATA_KEYS = {
    "agent_state_snapshot": ("snapshot_at", "agent_id"),
    "session_availability_snapshot": ("snapshot_at", "agent_id"),
    "chat_slots_snapshot": ("snapshot_at",),
    "chat_event": ("chat_id", "event_id"),
    "chat_session": ("chat_id",),
    "agent": ("agent_id",),
    "skill": ("skill_id",),
    "agent_skill": ("agent_id", "skill_id", "valid_from"),
}


def table_data(warehouse: Warehouse, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``table`` keyed by its data key, each row without clock stamps (values as Python objects)."""
    with warehouse.engine.connect() as db:
        rows = warehouse.read_table(db, table).to_pylist()
    keys = DATA_KEYS[table]
    return {tuple(row[k] for k in keys): {k: v for k, v in row.items() if k not in STAMP_COLUMNS} for row in rows}


def diff_tables(a: Warehouse, b: Warehouse, tables: tuple[str, ...] = tuple(DATA_KEYS)) -> dict[str, int]:
    """Rows that differ per table (missing on either side, or different values)."""
    out = {}
    for table in tables:
        left, right = table_data(a, table), table_data(b, table)
        differing = sum(1 for key in left.keys() & right.keys() if left[key] != right[key])
        out[table] = differing + len(left.keys() ^ right.keys())
    return out


def parquet_problems(root: Path) -> list[str]:
    """Files a reader could trip on: unreadable ``*.parquet`` files and leftover temporaries."""
    problems = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(".parquet"):
            try:
                pq.read_metadata(path)
                pq.read_table(path)
            except Exception as exc:  # any failure to read is the finding
                problems.append(f"unreadable {path.relative_to(root)}: {type(exc).__name__}")
        elif ".tmp-" in path.name:
            problems.append(f"temporary {path.relative_to(root)}")
    return problems


def parquet_rows_equal_sql(parquet: ParquetStore, warehouse: Warehouse) -> dict[str, tuple[int, int]]:
    """Per fact table (except ``snapshot_run``): (rows in Parquet, rows in SQL), only where they differ."""
    out = {}
    for table in schema.FACT_TABLES:
        if table == "snapshot_run":
            continue
        files = sum(pq.read_metadata(p).num_rows for p in parquet.fact_files(table))
        sql = count(warehouse, table)
        if files != sql:
            out[table] = (files, sql)
    return out


def write_report(directory: Path, name: str, figures: Mapping[str, Any]) -> Path:
    """Print the figures (visible with ``-s`` or in -rA output) and keep them as JSON for CI artifacts."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    text = json.dumps(figures, indent=2, sort_keys=True, default=str)
    path.write_text(text)
    print(f"\n=== reliability report: {name} ({'full' if FULL else 'CI'} size) -> {path}\n{text}")
    return path


# ---------------------------------------------------------------- pipeline processes
class PipelineProcess:
    """``tests.reliability.driver.run(spec)`` in a forked process (modules already imported: no start-up cost).

    Messages (``ready``, ``done``) come back through a pipe; ``kill()`` sends SIGKILL.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        import multiprocessing

        from tests.reliability import driver

        context = multiprocessing.get_context("fork")
        self._receiver, sender = context.Pipe(duplex=False)

        def target() -> None:
            driver.run(spec, emit=lambda **fields: sender.send(fields))

        self.process = context.Process(target=target, daemon=True)
        self.process.start()
        sender.close()

    def wait_for(self, event: str, timeout_s: float = 300.0) -> dict[str, Any]:
        while self._receiver.poll(timeout_s):
            try:
                message = self._receiver.recv()
            except EOFError:
                break
            if message["event"] == event:
                return message
        raise AssertionError(f"the pipeline process ended without {event!r} (exit code {self.process.exitcode})")

    def finish(self) -> dict[str, Any]:
        done = self.wait_for("done")
        self.process.join(timeout=120)
        assert self.process.exitcode == 0, self.process.exitcode
        self._receiver.close()
        return done

    def kill(self) -> bool:
        """SIGKILL now; True if the process was still running."""
        import signal

        alive = self.process.exitcode is None and self.process.is_alive()
        if alive:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(timeout=30)
        self._receiver.close()
        return alive
