"""Crash safety: the pipeline process is killed with SIGKILL at random (seeded) moments of a run, then run again.

Each trial starts from the same committed first run (simulated 10:00), kills a run at 10:01 after a random delay
drawn over the whole length of an uninterrupted run (fetch, SQL transactions and Parquet writes alike; chat
polls are slowed by 5 ms of latency to widen the fetch), restarts it at the same simulated time to completion, and
compares the warehouse with one that ran 10:00 and 10:01 without interruption. Warehouses: SQLite (file, WAL),
CI 10 trials, full (``RELIABILITY_FULL=1``) 50; PostgreSQL (each trial a database cloned from the first run's
with ``CREATE DATABASE ... TEMPLATE``), CI 5 trials, full 20.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipelines.liveperson.simulator import SimClock, Simulator, WorldConfig
from pipelines.storage import schema
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse
from tests.reliability.support import (
    FULL,
    LOGINS,
    PipelineProcess,
    compare_with_truth,
    parquet_problems,
    parquet_rows_equal_sql,
    table_data,
    write_report,
)

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
TRIALS = {"sqlite": 50 if FULL else 10, "postgres": 20 if FULL else 5}
# Differences a kill may leave that are not data: a killed run that listed chats counted their absences too.
CRASH_TOLERATED = {"chat_session": {"absent_runs"}}


@pytest.fixture
def crash_simulator():
    sim = Simulator(WorldConfig(seed=7, agents=50), clock=SimClock(at=T0, paused=True)).start()
    try:
        yield sim
    finally:
        sim.stop()


class Footprints:
    """Where a pipeline keeps its state (warehouse, Parquet, session cache), and how to clone a stopped one."""

    def __init__(self, dialect: str, server_url: str | None) -> None:
        self.dialect, self.server_url = dialect, server_url
        self.databases: list[str] = []

    def warehouse_url(self, folder: Path) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{folder / 'warehouse.db'}"
        assert self.server_url is not None
        name = f"crash_{folder.name}_{abs(hash(str(folder))) % 10**8}"
        return sa.make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def create(self, folder: Path, template: Path | None = None) -> None:
        """A new footprint at ``folder``: empty, or a copy of the stopped one at ``template``."""
        if template is not None:  # the SQLite file (and any WAL), Parquet files and session cache
            shutil.copytree(template, folder, ignore=shutil.ignore_patterns("*.writer.lock"))
        else:
            folder.mkdir(parents=True)
        if self.dialect == "postgres":
            name = sa.make_url(self.warehouse_url(folder)).database
            clause = f' TEMPLATE "{sa.make_url(self.warehouse_url(template)).database}"' if template else ""
            self._admin(f'CREATE DATABASE "{name}"{clause}')
            self.databases.append(name)

    def drop_all(self) -> None:
        for name in self.databases:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        engine = sa.create_engine(self.server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as db:
                db.exec_driver_sql(statement)
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def footprints(request: pytest.FixtureRequest):
    server_url = request.getfixturevalue("postgres_server_url") if request.param == "postgres" else None
    places = Footprints(request.param, server_url)
    try:
        yield places
    finally:
        if request.param == "postgres":
            places.drop_all()


def spec_for(sim: Simulator, folder: Path, places: Footprints) -> dict[str, Any]:
    return {
        "base_url": sim.base_url,
        "account_id": sim.account_id,
        "logins": sim.logins(LOGINS),
        "clock": sim.clock.state(),
        "warehouse": places.warehouse_url(folder),
        "parquet": str(folder / "parquet"),
        "state_dir": str(folder / "state"),
    }


def differing_rows(trial: Warehouse, reference: Warehouse) -> dict[str, int]:
    out = {}
    for table in ("agent_state_snapshot", "session_availability_snapshot", "chat_slots_snapshot", "chat_event",
                  "chat_session", "agent", "skill", "agent_skill"):  # fmt: skip
        ignored = CRASH_TOLERATED.get(table, set())
        left, right = (
            {key: {c: v for c, v in row.items() if c not in ignored} for key, row in table_data(side, table).items()}
            for side in (trial, reference)
        )
        out[table] = sum(1 for k in left.keys() & right.keys() if left[k] != right[k]) + len(left.keys() ^ right.keys())
    return {table: n for table, n in out.items() if n}


def snapshot_duplicates_disagree(warehouse: Warehouse) -> int:
    """Rows of one (snapshot_at, agent_id) from a killed run and its restart must hold the same data."""
    with warehouse.engine.connect() as db:
        rows = warehouse.read_table(db, "agent_state_snapshot").to_pylist()
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    disagreeing = 0
    for row in rows:
        key = (row["snapshot_at"], row["agent_id"])
        data = {k: v for k, v in row.items() if k != "snapshot_id"}
        if key in seen and seen[key] != data:
            disagreeing += 1
        seen.setdefault(key, data)
    return disagreeing


def test_sigkill_at_random_moments_then_a_restart_leaves_the_same_data_as_an_uninterrupted_run(
    crash_simulator, footprints, tmp_path, reports
):
    sim, places = crash_simulator, footprints
    sim.faults.set(endpoint="chat/{chatId}", kind="latency", probability=1.0, ms=5)
    base = tmp_path / "base"
    places.create(base)
    PipelineProcess(spec_for(sim, base, places)).finish()  # 10:00, committed: every trial starts from here

    sim.clock.set(at=T0.replace(minute=1))
    reference_dir = tmp_path / "reference"
    places.create(reference_dir, template=base)
    reference_run = PipelineProcess(spec_for(sim, reference_dir, places)).finish()
    reference = Warehouse(spec_for(sim, reference_dir, places)["warehouse"])
    window_s = 1.2 * reference_run["seconds"]  # from "ready": the whole run, and a little after it

    rng = random.Random(20261127)
    figures: dict[str, Any] = {
        "trials": 0,
        "killed_mid_run": 0,
        "finished_before_kill": 0,
        "mismatched_trials": 0,
        "left_by_kill": Counter(),
        "mismatches": [],
        "reference_run_s": reference_run["seconds"],
    }
    for trial in range(TRIALS[places.dialect]):
        folder = tmp_path / f"trial{trial}"
        places.create(folder, template=base)
        spec = spec_for(sim, folder, places)
        delay = rng.uniform(0.0, window_s)
        child = PipelineProcess(spec)
        child.wait_for("ready")
        time.sleep(delay)
        killed = child.kill()
        figures["trials"] += 1
        figures["killed_mid_run" if killed else "finished_before_kill"] += 1
        left = what_the_kill_left(folder, Warehouse(spec["warehouse"]))
        figures["left_by_kill"].update(k for k, v in left.items() if v)

        restart = PipelineProcess(spec).finish()
        warehouse = Warehouse(spec["warehouse"])
        problems: dict[str, Any] = {}
        if restart["status"] != "ok":
            problems["restart_status"] = restart["status"]
        if diff := differing_rows(warehouse, reference):
            problems["rows"] = diff
        if snapshot_duplicates_disagree(warehouse):
            problems["killed_snapshot_differs"] = True
        truth = compare_with_truth(sim, warehouse, exact=True)
        if truth["lost"] or truth["duplicated"] or truth["cursor_ahead"] or truth["cursor_behind"]:
            problems["truth"] = {k: truth[k] for k in ("lost", "duplicated", "cursor_ahead", "cursor_behind")}
        if files := parquet_problems(folder / "parquet"):
            problems["parquet"] = files
        if counts := parquet_rows_equal_sql(ParquetStore(spec["parquet"]), warehouse):
            problems["parquet_vs_sql"] = counts
        if runs := dishonest_runs(warehouse):
            problems["runs"] = runs
        warehouse.dispose()
        if problems:
            figures["mismatched_trials"] += 1
            figures["mismatches"].append({"trial": trial, "delay_s": round(delay, 3), "left": left, **problems})
    reference.dispose()
    figures["left_by_kill"] = dict(figures["left_by_kill"])
    figures["dialect"] = places.dialect
    write_report(reports, f"crash_safety_{places.dialect}", figures)
    assert figures["killed_mid_run"] >= TRIALS[places.dialect] // 2, "the kills should mostly land inside a run"
    assert figures["mismatched_trials"] == 0, figures["mismatches"]


def what_the_kill_left(folder: Path, warehouse: Warehouse) -> dict[str, int]:
    """What a kill left behind, before the restart: how far the killed run got, and any temporary file."""
    runs = schema.TABLES["snapshot_run"]
    with warehouse.engine.connect() as db:
        unfinished = db.execute(sa.select(sa.func.count()).where(runs.c.finished_at.is_(None))).scalar_one()
        snapshots = db.execute(
            sa.select(sa.func.count(sa.distinct(schema.TABLES["agent_state_snapshot"].c.snapshot_id)))
        ).scalar_one()
        killed = sa.select(runs.c.snapshot_id).where(runs.c.finished_at.is_(None))
        events = schema.TABLES["chat_event"]
        killed_events = db.execute(sa.select(sa.func.count()).where(events.c.snapshot_id.in_(killed))).scalar_one()
    warehouse.dispose()
    temporaries = sum(1 for p in (folder / "parquet").rglob("*") if ".tmp-" in p.name)
    return {
        "run_row_unfinished": unfinished,
        "agent_snapshot_committed": int(snapshots > 1),
        "chat_events_committed": int(killed_events > 0),
        "temporary_files": temporaries,
    }


def dishonest_runs(warehouse: Warehouse) -> list[str]:
    """Runs whose row is not honest: a finished run must be ok here; a killed one failed, and exported later."""
    runs = schema.TABLES["snapshot_run"]
    with warehouse.engine.connect() as db:
        rows = db.execute(sa.select(runs)).all()
    bad = []
    for row in rows:
        if row.parquet_written_at is None:
            bad.append(f"{row.snapshot_id}: never exported")
        if row.finished_at is None and row.status != "failed":
            bad.append(f"{row.snapshot_id}: killed but {row.status}")
        if row.finished_at is not None and row.status != "ok":
            bad.append(f"{row.snapshot_id}: finished as {row.status}")
    return bad
