"""Reporting test data: hand-made snapshot sequences and a generated multi-day world, stored the contract's way
(migrated warehouse, or Parquet in the contract's layout) so the views run on real SQLite, PostgreSQL and DuckDB."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.storage.schema import ARROW_SCHEMAS, DIMENSION_TABLES
from pipelines.storage.warehouse import Warehouse

DAY = date(2026, 11, 27)
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
STATE_NAMES = {1: "Offline", 2: "Online", 3: "Occupied", 4: "Away"}
OFFLINE, ONLINE, OCCUPIED, AWAY = 1, 2, 3, 4


@dataclass
class Snapshots:
    """Contract rows built by hand: ``add`` one agent's snapshot at ``T0 + at_s`` with the elapsed the API gave."""

    interval_s: int = 60
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    _runs: set[str] = field(default_factory=set)

    def add(
        self,
        at_s: float,
        agent_id: str,
        state: int,
        elapsed_s: float | None = 0,
        *,
        chats: int | None = 0,
        max_chats: int = 2,
        group: str = "g1",
        status: str = "ok",
    ) -> Snapshots:
        at = at_s if isinstance(at_s, datetime) else T0 + timedelta(seconds=at_s)
        snapshot_id = self.run(at, status)
        elapsed_ms = None if elapsed_s is None else round(elapsed_s * 1000)
        self.tables["agent_state_snapshot"].append({
            "snapshot_id": snapshot_id, "snapshot_at": at, "agent_id": agent_id, "chat_state_code": state,
            "chat_state": STATE_NAMES.get(state, f"unknown:{state}"), "voice_state_code": 1, "voice_state": "Offline",
            "max_chats": max_chats, "chats": chats, "elapsed_in_state_ms": elapsed_ms,
            "state_started_at": at - timedelta(milliseconds=elapsed_ms or 0), "agent_group_id": group,
        })
        return self

    def run(self, at: datetime, status: str = "ok", slots: int | None = None) -> str:
        """The snapshot_run (and chat_slots_snapshot) row of the run that arrived at ``at``."""
        snapshot_id = f"{at:%Y%m%dT%H%M%S%f}Z-test"
        if snapshot_id not in self._runs:
            self._runs.add(snapshot_id)
            self.tables["snapshot_run"].append({
                "snapshot_id": snapshot_id, "started_at": at - timedelta(seconds=1), "finished_at": at,
                "status": status, "source": "simulator", "account_id": "1234", "interval_s": self.interval_s,
            })
            if slots is not None:
                self.tables["chat_slots_snapshot"].append(
                    {"snapshot_id": snapshot_id, "snapshot_at": at, "available_slots": slots}
                )
        return snapshot_id

    def agent(self, agent_id: str, *, monitored: bool = False, group: str = "g1") -> Snapshots:
        self.tables["agent"].append({
            "agent_id": agent_id, "user_name": f"user-{agent_id}", "agent_group_id": group,
            "agent_group_name": f"Group {group}", "monitored": monitored,
        })
        return self

    def chat(self, chat_id: str, monitored_by: str, start: datetime) -> Snapshots:
        self.tables["chat_session"].append({
            "chat_id": chat_id, "monitored_by": monitored_by, "agent_id": monitored_by, "start_time": start,
            "state": "ended",
        })
        return self

    def arrow(self) -> dict[str, pa.Table]:
        return {name: pa.Table.from_pylist(rows, schema=_schema_of(name, rows)) for name, rows in self.tables.items()}


def _schema_of(table: str, rows: list[dict[str, Any]]) -> pa.Schema:
    names = list(rows[0]) if rows else []
    return pa.schema([ARROW_SCHEMAS[table].field(name) for name in names])


def store(tables: dict[str, pa.Table], kind: str, tmp_path: Path, postgres_url: str | None = None) -> str:
    """Write ``tables`` to a fresh warehouse (``sqlite`` / ``postgres``) or Parquet root (``parquet``)."""
    if kind == "parquet":
        root = tmp_path / "parquet"
        write_parquet(tables, root)
        return str(root)
    url = postgres_url if kind == "postgres" else f"sqlite:///{tmp_path / 'warehouse.db'}"
    assert url is not None
    warehouse = Warehouse(url)
    warehouse.migrate()
    with warehouse.begin() as conn:
        for name, table in tables.items():
            warehouse.upsert(conn, name, table, update=False)
    warehouse.dispose()
    return url


def write_parquet(tables: dict[str, pa.Table], root: Path) -> None:
    """The contract's layout: facts in ``<table>/date=YYYY-MM-DD/<snapshot_id>.parquet``, dimensions in
    ``<table>/current.parquet``, each cast to the table's full Arrow schema."""
    for name, table in tables.items():
        schema = ARROW_SCHEMAS[name]
        full = pa.table({f.name: table[f.name] if f.name in table.column_names else pa.nulls(len(table), f.type)
                         for f in schema}, schema=schema)
        folder = root / name
        if name in DIMENSION_TABLES:
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(full, folder / "current.parquet")
            continue
        time_column = "started_at" if name == "snapshot_run" else "snapshot_at"
        ids = full["snapshot_id"].to_pylist()
        times = full[time_column].to_pylist()
        rows_of: dict[str, list[int]] = defaultdict(list)
        day_of: dict[str, date] = {}
        for i, (snapshot_id, at) in enumerate(zip(ids, times, strict=True)):
            rows_of[snapshot_id].append(i)
            day_of[snapshot_id] = at.date()
        for snapshot_id, rows in rows_of.items():
            part = folder / f"date={day_of[snapshot_id].isoformat()}"
            part.mkdir(parents=True, exist_ok=True)
            pq.write_table(full.take(rows), part / f"{snapshot_id}.parquet")


@pytest.fixture(params=["sqlite", "parquet"])
def kind(request: pytest.FixtureRequest) -> str:
    """The two backends that need no server: every rule is checked on SQLite and on DuckDB over Parquet."""
    return request.param


@pytest.fixture
def load(kind: str, tmp_path: Path):
    """``load(snapshots) -> source`` on the backend of this test's ``kind``."""
    return lambda snapshots: store(snapshots.arrow(), kind, tmp_path)


def generated_world(agents: int = 200, days: int = 2, interval_s: int = 600, seed: int = 7) -> Snapshots:
    """A multi-day world with every quirk the rules handle: untracked Offline, start jitter, same-state flaps,
    an outage across a midnight and one mid-day, a failed run, absent ``chats``, unlimited and zero max_chats,
    monitored agents with chats."""
    rng = random.Random(seed)
    world = Snapshots(interval_s=interval_s)
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    end = start + timedelta(days=days, hours=1)
    outages = [(start + timedelta(hours=23, minutes=40), start + timedelta(days=1, minutes=25)),
               (start + timedelta(hours=13), start + timedelta(hours=13, minutes=16))]
    mean_s = {OFFLINE: 5400, ONLINE: 1500, OCCUPIED: 600, AWAY: 400}
    timelines: dict[str, list[tuple[datetime, int]]] = {}
    for n in range(agents):
        agent_id = f"{1000 + n}"
        world.agent(agent_id, monitored=n < 6, group=f"g{n % 4}")
        t, spans = start - timedelta(seconds=rng.uniform(0, 20000)), []
        while t < end:
            state = rng.choice([OFFLINE, ONLINE, ONLINE, OCCUPIED, AWAY])
            spans.append((t, state))
            t += timedelta(seconds=rng.expovariate(1 / mean_s[state]) + 5)
        timelines[agent_id] = spans
    max_chats = {agent_id: rng.choice([-1, 0, 2, 3, 3, 5]) for agent_id in timelines}
    runs, at = [], start
    while at < end:
        at += timedelta(seconds=interval_s, microseconds=rng.randrange(1_000_000))
        if any(lo <= at < hi for lo, hi in outages):
            continue
        if rng.random() < 0.003:
            world.run(at, status="failed")
            continue
        world.run(at, slots=rng.choice([-1, 0, 1, 2, 5]))
        runs.append(at)
    for agent_id, spans in timelines.items():
        i = 0
        for at in runs:
            while i + 1 < len(spans) and spans[i + 1][0] <= at:
                i += 1
            started, state = spans[i]
            if started > at:
                continue
            elapsed = (at - started).total_seconds() + rng.uniform(-1.0, 1.0) if state != OFFLINE else 0
            busy = state in (ONLINE, OCCUPIED)
            world.add(at, agent_id, state, max(elapsed, 0), max_chats=max_chats[agent_id],
                      chats=None if rng.random() < 0.02 else (rng.randint(0, 3) if busy else 0),
                      group=f"g{int(agent_id) % 4}")
    for n in range(6):
        for k in range(30):
            world.chat(f"chat-{n}-{k}", f"{1000 + n}", start + timedelta(seconds=rng.uniform(0, days * 86400)))
    return world
