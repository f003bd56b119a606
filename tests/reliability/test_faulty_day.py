"""A faulty day: every fault of the issue at once, runs on the schedule in simulated time, then the books must balance.

Sizes. CI: 2 simulated hours from 09:00 (a busy morning) with a run every 5 simulated minutes (24 runs), latency
spikes of 5-50 ms. Full (``RELIABILITY_FULL=1``): 24 simulated hours with a run every simulated minute (1,440 runs),
spikes of 200-2,000 ms; ``RELIABILITY_FAULTY_HOURS`` shortens the day. Faults on every endpoint: agent sessions
expire every 20 simulated minutes, 5% 503, 2% 429 (Retry-After 1 s), 1% truncated bodies, 0.5% HTML pages with
status 200, 0.5% XML bodies, 1% latency spikes. The clock is paused during each run and moved on between runs,
so the ground truth is exact.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from pipelines.ingest import run_snapshot
from pipelines.liveperson.simulator import SimClock, Simulator, WorldConfig
from pipelines.storage import schema
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse
from tests.reliability.support import (
    DEAD_LETTERED_READS,
    FULL,
    FaultLedger,
    compare_with_truth,
    faulty_day_faults,
    parquet_problems,
    parquet_rows_equal_sql,
    pipeline_connection,
    write_report,
)

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
HOURS, STEP_S, SPIKES_MS = (24, 60, (200.0, 2000.0)) if FULL else (2, 300, (5.0, 50.0))
HOURS = int(os.environ.get("RELIABILITY_FAULTY_HOURS", HOURS))  # a shorter long form when time is short


def letter_kind(error: str, status: int | None) -> str:
    """What a dead letter was, from its message: an HTML page, a cut body, or an HTTP status retries did not cure."""
    if "HTML" in error:
        return "html"
    if "truncated" in error or "malformed" in error:
        return "truncated"
    return f"http {status}" if status else "no answer"


@pytest.fixture
def faulty_simulator():
    sim = Simulator(WorldConfig(seed=7, agents=50), clock=SimClock(at=START, paused=True)).start()
    try:
        yield sim
    finally:
        sim.stop()


def test_a_faulty_day_loses_and_duplicates_nothing_and_every_bad_payload_is_a_dead_letter(
    faulty_simulator, warehouse_url, tmp_path, reports
):
    sim = faulty_simulator
    warehouse = Warehouse(warehouse_url)
    parquet = ParquetStore(str(tmp_path / "parquet"))
    faulty_day_faults(sim, spikes_ms=SPIKES_MS)
    ledger = FaultLedger(sim)
    summaries = []
    with pipeline_connection(sim, tmp_path / "state") as connection:
        for _ in range(HOURS * 3600 // STEP_S):
            summaries.append(run_snapshot(connection, warehouse, parquet, interval_s=STEP_S))
            sim.clock.advance(STEP_S)
        during = compare_with_truth(sim, warehouse, exact=False)
        sim.faults.clear()  # one clean run: every chat whose latest poll was dead-lettered catches up
        catch_up = run_snapshot(connection, warehouse, parquet, interval_s=STEP_S)
    after = compare_with_truth(sim, warehouse, exact=True)

    runs, errors = schema.TABLES["snapshot_run"], schema.TABLES["ingest_error"]
    with warehouse.engine.connect() as db:
        run_rows = db.execute(sa.select(runs)).all()
        small_facts = Counter(  # rows of the run's other snapshots: its session availability and slots
            snapshot_id
            for name in ("session_availability_snapshot", "chat_slots_snapshot")
            for (snapshot_id,) in db.execute(sa.select(schema.TABLES[name].c.snapshot_id))
        )
        letters = db.execute(sa.select(errors)).all()
    letters_per_run = Counter(row.snapshot_id for row in letters)
    letters_per_endpoint = Counter(
        "chat/{chatId}" if row.endpoint.startswith("chat/") and row.endpoint != "chat/availableSlots" else row.endpoint
        for row in letters
    )
    unreadable_200 = Counter(
        "chat/{chatId}" if row.endpoint.startswith("chat/") and row.endpoint != "chat/availableSlots" else row.endpoint
        for row in letters
        if row.http_status == 200
    )
    figures = {
        "size": {"hours": HOURS, "step_s": STEP_S, "spikes_ms": SPIKES_MS, "dialect": warehouse.dialect},
        "runs": len(run_rows),
        "statuses": dict(Counter(row.status for row in run_rows)),
        "events_stored": after["events"],
        "chats": after["chats"],
        "during_faults": {k: v for k, v in during.items() if k != "bad_chats"},
        "after_catch_up": {k: v for k, v in after.items() if k != "bad_chats"},
        "faults_injected": ledger.by_kind(),
        "dead_letters": len(letters),
        "dead_letters_by_endpoint": dict(letters_per_endpoint),
        "dead_letters_by_status": dict(Counter(str(row.http_status) for row in letters)),
        "dead_letters_by_kind": dict(Counter(letter_kind(row.error, row.http_status) for row in letters)),
        "unreadable_injected_vs_dead_lettered": {
            e: (ledger.unreadable(e), unreadable_200[e]) for e in DEAD_LETTERED_READS
        },
    }
    write_report(reports, f"faulty_day_{warehouse.dialect}", figures)
    warehouse.dispose()

    # Nothing lost, nothing twice, no cursor ahead of what is stored, during the faults and after a clean run.
    for name, result in (("during faults", during), ("after catch-up", after)):
        assert result["lost"] == 0 and result["duplicated"] == 0 and result["unknown"] == 0, (name, result["bad_chats"])
        assert result["cursor_ahead"] == 0 and result["cursor_behind"] == 0, name
        assert result["events_of_unknown_chats"] == 0, name
    assert after["chats"] > 0 and after["events"] > 0
    assert catch_up.status == "ok"

    # Every unreadable answer the simulator served on a dead-lettered read is exactly one dead letter.
    for endpoint in DEAD_LETTERED_READS:
        assert unreadable_200[endpoint] == ledger.unreadable(endpoint), endpoint
    assert sum(ledger.unreadable(e) for e in DEAD_LETTERED_READS) > 0, "the day injected unreadable bodies"

    # Honest statuses: ok iff no error; partial when errors and data; the error count is the dead letters' count.
    assert len(run_rows) == len(summaries) + 1
    for row in run_rows:
        assert row.errors == letters_per_run[row.snapshot_id], row.snapshot_id
        assert row.finished_at is not None and row.parquet_written_at is not None, row.snapshot_id
        if row.errors == 0:
            assert row.status == "ok", row.snapshot_id
        else:
            # the contract: "failed" only when nothing could be read or stored. A run that stored nothing may still
            # have read something (an empty chatSessions, say) and be partial; one that stored anything is partial.
            stored_anything = row.agents > 0 or row.chats > 0 or small_facts[row.snapshot_id] > 0
            assert row.status in (("partial",) if stored_anything else ("partial", "failed")), row.snapshot_id
    assert {s.status for s in summaries} <= {"ok", "partial"}
    assert any(s.status == "partial" for s in summaries)

    # Every dead letter keeps what was served: a readable answer's body is never lost.
    for row in letters:
        assert row.error, row.error_id
        if row.http_status == 200:
            assert row.payload, row.error_id

    assert parquet_problems(tmp_path / "parquet") == []
    assert parquet_rows_equal_sql(parquet, Warehouse(warehouse_url)) == {}


def test_an_unreadable_info_answer_is_a_dead_letter_wherever_the_run_asks_for_it(simulator, tmp_path):
    """A run asks ``info`` in three places (to learn a login's agent id, for availability, before chatSessions)."""
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    ledger = FaultLedger(simulator)
    simulator.faults.set(endpoint="info", kind="truncate", probability=1.0)
    with pipeline_connection(simulator, tmp_path / "state") as connection:
        summary = run_snapshot(connection, warehouse, ParquetStore(str(tmp_path / "parquet")))
    errors = schema.TABLES["ingest_error"]
    with warehouse.engine.connect() as db:
        info_letters = db.execute(sa.select(sa.func.count()).where(errors.c.endpoint == "info")).scalar_one()
    warehouse.dispose()
    assert ledger.unreadable("info") > 0
    assert info_letters == ledger.unreadable("info")
    assert summary.status == "partial" and summary.errors == info_letters
