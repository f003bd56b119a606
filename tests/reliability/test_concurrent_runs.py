"""Two runs at once: two pipeline processes start together (a deployment's schedule overlapping a manual run).

``availableAgents`` answers 2 s late, so the first run holds the writer lock for at least that long; the second
process starts once the test sees the lock taken. Each round runs both at the same simulated minute: a second
run that waits briefly skips (returns None) and says so; one that may wait long enough runs after the first.
Either way no event is stored twice and no cursor goes back. Rounds: CI 2 (skip, wait), full 6.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pandas  # noqa: F401  - imported before forking, so that a forked run starts at once
import sqlalchemy as sa

from pipelines.storage import schema
from pipelines.storage.lock import writer_lock
from pipelines.storage.warehouse import Warehouse
from tests.reliability.support import FULL, LOGINS, PipelineProcess, compare_with_truth, stored_events, write_report

ROUNDS = (("skip", 0.2), ("wait", 60.0)) * (3 if FULL else 1)


def spec_for(sim: Any, url: str, folder: Any, lock_wait_s: float) -> dict[str, Any]:
    return {
        "base_url": sim.base_url,
        "account_id": sim.account_id,
        "logins": sim.logins(LOGINS),
        "clock": sim.clock.state(),
        "warehouse": url,
        "parquet": str(folder / "parquet"),
        "state_dir": str(folder / "state"),
        "lock_wait_s": lock_wait_s,
    }


def wait_until_locked(warehouse: Warehouse) -> None:
    for _ in range(600):
        with writer_lock(warehouse, 0) as free:
            if not free:
                return
        time.sleep(0.05)
    raise AssertionError("the first run never took the writer lock")


def cursors(warehouse: Warehouse) -> dict[str, int]:
    sessions = schema.TABLES["chat_session"]
    with warehouse.engine.connect() as db:
        return {row.chat_id: int(row.next_from or 0) for row in db.execute(sa.select(sessions))}


def test_a_second_run_started_during_the_first_skips_or_waits_and_stores_nothing_twice(
    simulator, warehouse_url, tmp_path, reports
):
    simulator.faults.set(endpoint="availableAgents", kind="latency", probability=1.0, ms=2000)
    warehouse = Warehouse(warehouse_url)
    outcomes: Counter[str] = Counter()
    regressions = 0
    previous: dict[str, int] = {}
    for kind, second_wait_s in ROUNDS:
        first = PipelineProcess(spec_for(simulator, warehouse_url, tmp_path, lock_wait_s=60.0))
        first.wait_for("ready")
        wait_until_locked(warehouse)  # the first process is inside its run, for >= 2 s of latency
        second = PipelineProcess(spec_for(simulator, warehouse_url, tmp_path, lock_wait_s=second_wait_s))
        results = [first.finish(), second.finish()]
        statuses = sorted(str(r["status"]) for r in results)
        outcomes[f"{kind}: {' + '.join(statuses)}"] += 1
        assert statuses == (["None", "ok"] if kind == "skip" else ["ok", "ok"]), statuses
        now = cursors(warehouse)
        regressions += sum(1 for chat, cursor in previous.items() if now.get(chat, 0) < cursor)
        previous = now
        simulator.clock.advance(60)

    truth = compare_with_truth(simulator, warehouse, exact=True)
    events = stored_events(warehouse)
    runs = schema.TABLES["snapshot_run"]
    with warehouse.engine.connect() as db:
        run_statuses = Counter(db.execute(sa.select(runs.c.status)).scalars())
    figures = {
        "dialect": warehouse.dialect,
        "rounds": dict(outcomes),
        "snapshot_runs": dict(run_statuses),
        "events": sum(len(v) for v in events.values()),
        "cursor_regressions": regressions,
        **{k: v for k, v in truth.items() if k != "bad_chats"},
    }
    write_report(reports, f"concurrent_runs_{warehouse.dialect}", figures)
    warehouse.dispose()
    assert regressions == 0
    assert truth["lost"] == 0 and truth["duplicated"] == 0, truth["bad_chats"]
    assert truth["cursor_ahead"] == 0 and truth["cursor_behind"] == 0
    assert dict(run_statuses) == {"ok": sum(1 if kind == "skip" else 2 for kind, _ in ROUNDS)}
