"""The snapshot runner end to end: real simulator over HTTP, real SQLite and PostgreSQL, real Parquet files.

Clock pinned: the simulator's clock is paused and moved a minute between runs, and the runner stamps rows with
the same clock, so every comparison with the simulator's ground truth is exact.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipelines.ingest import run_snapshot
from pipelines.liveperson.connect import connect
from pipelines.storage import schema
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse


@pytest.fixture
def pipeline(simulator, warehouse_url, tmp_path):
    env = {"LP_STATE_DIR": str(tmp_path / "state"), "LP_SIMULATOR_LOGINS": "6"}
    warehouse = Warehouse(warehouse_url)
    parquet = ParquetStore(str(tmp_path / "parquet"))
    with connect(env, simulator=simulator) as conn:
        yield conn, warehouse, parquet
    warehouse.dispose()


def count(warehouse: Warehouse, table: str) -> int:
    with warehouse.engine.connect() as db:
        return db.execute(sa.select(sa.func.count()).select_from(schema.TABLES[table])).scalar_one()


def parquet_rows(parquet: ParquetStore, table: str) -> int:
    return sum(pq.read_metadata(path).num_rows for path in parquet.fact_files(table))


def stored_events(warehouse: Warehouse) -> dict[str, list[int]]:
    events = schema.TABLES["chat_event"]
    by_chat: dict[str, list[int]] = defaultdict(list)
    with warehouse.engine.connect() as db:
        for chat_id, event_id in db.execute(sa.select(events.c.chat_id, events.c.event_id)):
            by_chat[chat_id].append(event_id)
    return by_chat


def test_three_runs_fill_every_table_and_events_equal_ground_truth(pipeline, simulator):
    conn, warehouse, parquet = pipeline
    summaries = []
    for run in range(3):
        if run == 1:  # one run meets unreadable chat bodies: dead-lettered, then caught up by the next run
            simulator.faults.set(endpoint="chat/{chatId}", kind="truncate", probability=0.5)
        summaries.append(run_snapshot(conn, warehouse, parquet))
        simulator.faults.clear()
        simulator.clock.advance(60)

    assert summaries[0].status == "ok" and summaries[2].status == "ok"
    assert summaries[1].status == "partial" and summaries[1].errors > 0
    for table in schema.TABLES:
        assert count(warehouse, table) > 0, f"{table} is empty"

    sessions = schema.TABLES["chat_session"]
    with warehouse.engine.connect() as db:
        polled = db.execute(sa.select(sessions.c.chat_id, sessions.c.last_seen_at, sessions.c.next_from)).all()
    stored = stored_events(warehouse)
    assert polled, "the monitored agents had chats at the busy hour"
    for chat_id, last_poll, next_from in polled:
        truth = [int(e["@id"]) for e in simulator.truth.chat_events(chat_id, until=last_poll)]
        assert sorted(stored.get(chat_id, [])) == truth, chat_id
        assert next_from == (truth[-1] + 1 if truth else 0)


def test_parquet_rows_equal_sql_rows_table_by_table(pipeline, simulator):
    conn, warehouse, parquet = pipeline
    for _ in range(2):
        run_snapshot(conn, warehouse, parquet)
        simulator.clock.advance(60)
    for table in schema.FACT_TABLES:
        assert parquet_rows(parquet, table) == count(warehouse, table), table
    for table in schema.DIMENSION_TABLES:
        path = Path(parquet.root) / table / "current.parquet"
        assert pq.read_metadata(path).num_rows == count(warehouse, table), table


def test_rerunning_at_the_same_instant_adds_a_snapshot_but_no_event_twice(pipeline):
    conn, warehouse, parquet = pipeline
    run_snapshot(conn, warehouse, parquet)
    events_after_first = count(warehouse, "chat_event")
    run_snapshot(conn, warehouse, parquet)
    assert count(warehouse, "snapshot_run") == 2
    assert count(warehouse, "chat_event") == events_after_first
    assert parquet_rows(parquet, "chat_event") == events_after_first


def test_a_run_that_crashed_before_its_parquet_export_is_exported_by_the_next(pipeline, simulator):
    conn, warehouse, parquet = pipeline
    first = run_snapshot(conn, warehouse, parquet)
    for path in parquet.fact_files("agent_state_snapshot") + parquet.fact_files("snapshot_run"):
        Path(path).unlink()  # as if the process died after committing SQL, before writing its files
    runs = schema.TABLES["snapshot_run"]
    with warehouse.begin() as db:
        db.execute(sa.update(runs).where(runs.c.snapshot_id == first.snapshot_id).values(parquet_written_at=None))
    simulator.clock.advance(60)
    run_snapshot(conn, warehouse, parquet)
    assert parquet_rows(parquet, "agent_state_snapshot") == count(warehouse, "agent_state_snapshot")
    assert parquet_rows(parquet, "snapshot_run") == 2


def test_a_skill_that_disappears_closes_its_membership(pipeline, simulator):
    conn, warehouse, parquet = pipeline
    run_snapshot(conn, warehouse, parquet)
    memberships = schema.TABLES["agent_skill"]
    with warehouse.begin() as db:  # pretend an agent had one more skill before, still open
        db.execute(sa.insert(memberships).values(agent_id=simulator.world.agents[0].agent_id, skill_id="retired",
                                                 valid_from=simulator.clock.now() - timedelta(days=1)))
    simulator.clock.advance(60)
    run_snapshot(conn, warehouse, parquet)
    with warehouse.engine.connect() as db:
        closed = db.execute(sa.select(memberships.c.valid_to).where(memberships.c.skill_id == "retired")).scalar_one()
    assert closed == simulator.clock.now()  # the second run's snapshot_at (the clock is paused)


def test_chat_text_and_visitor_names_are_not_stored_by_default(pipeline, simulator):
    conn, warehouse, parquet = pipeline
    run_snapshot(conn, warehouse, parquet)
    events, sessions = schema.TABLES["chat_event"], schema.TABLES["chat_session"]
    with warehouse.engine.connect() as db:
        texts = db.execute(sa.select(events.c.text).where(events.c.text.is_not(None))).all()
        lengths = db.execute(sa.select(events.c.text_length).where(events.c.event_type == "line")).scalars().all()
        info = db.execute(sa.select(sessions.c.chat_id, sessions.c.info_json)).all()
    assert texts == []
    assert lengths and all(length and length > 0 for length in lengths)
    assert info
    for chat_id, info_json in info:
        served_name = simulator.world.chat_info(chat_id, simulator.clock.now())["visitorName"]
        stored = orjson.loads(info_json)
        assert stored["visitorName"] == len(served_name), chat_id  # its length stands in for it


def test_a_run_that_could_read_nothing_fails_even_with_no_chat_to_poll(pipeline, simulator):
    conn, warehouse, parquet = pipeline
    now = simulator.clock.now()
    simulator.faults.set(endpoint="*", kind="outage", start=now, end=now + timedelta(hours=1))

    summary = run_snapshot(conn, warehouse, parquet)

    assert summary is not None and summary.status == "failed" and summary.errors > 0


def test_an_empty_chat_list_is_an_answer_so_the_run_is_partial_not_failed(pipeline, simulator):
    conn, warehouse, parquet = pipeline
    simulator.faults.set(endpoint="availableAgents", kind="server_error", probability=1.0)

    summary = run_snapshot(conn, warehouse, parquet)

    assert summary is not None and summary.status == "partial"
