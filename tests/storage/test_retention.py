"""Retention: exactly what is older than the cutoff goes, from the warehouse (SQLite and PostgreSQL) and from the
Parquet tree, and nothing at all goes while ``RETENTION_DAYS`` is unset."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipelines.ingest import run_snapshot
from pipelines.liveperson.connect import connect
from pipelines.storage import schema
from pipelines.storage.compaction import compact_partition
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.retention import (
    RetentionConfigError,
    apply_retention,
    delete_old_rows,
    retention_cutoff,
    retention_days_from_env,
)
from pipelines.storage.warehouse import Warehouse
from tests.storage.interrupts import killed_between_fallback_renames

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CUTOFF = datetime(2026, 11, 25, tzinfo=UTC)  # RETENTION_DAYS=2 at NOW: the 25th and 26th stay, with today
OLD = CUTOFF - timedelta(microseconds=1)
TINY = timedelta(microseconds=1)



def keys(warehouse: Warehouse, table: str) -> set:
    columns = [schema.TABLES[table].c[key] for key in schema.KEYS[table]]
    with warehouse.engine.connect() as conn:
        return {row[0] if len(row) == 1 else tuple(row) for row in conn.execute(sa.select(*columns))}


# ------------------------------------------------------------------ the setting


@pytest.mark.parametrize(
    ("env", "days"),
    [({}, None), ({"RETENTION_DAYS": ""}, None), ({"RETENTION_DAYS": "  "}, None), ({"RETENTION_DAYS": "30"}, 30),
     ({"RETENTION_DAYS": " 7 "}, 7), ({"RETENTION_DAYS": "1"}, 1)],
)  # fmt: skip
def test_retention_days_is_a_whole_number_of_days_or_unset_for_keep_everything(env: dict, days: int | None) -> None:
    assert retention_days_from_env(env) == days


@pytest.mark.parametrize("raw", ["abc", "-3", "0", "1.5", "7d", "30 days", "99999999", "\u0663", "+5"])
def test_nonsense_retention_days_is_a_clear_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(RetentionConfigError, match="RETENTION_DAYS"):
        retention_days_from_env({"RETENTION_DAYS": raw})


def test_the_cutoff_is_midnight_utc_so_that_today_and_n_full_days_stay() -> None:
    assert retention_cutoff(2, NOW) == CUTOFF
    assert retention_cutoff(1, datetime(2026, 11, 27, 0, 30, tzinfo=UTC)) == datetime(2026, 11, 26, tzinfo=UTC)


# ------------------------------------------------------------------ the warehouse, both dialects


def _seed(warehouse: Warehouse) -> None:
    """For every table, a row just older than the cutoff and one exactly at it (kept)."""
    with warehouse.begin() as conn:
        up = warehouse.upsert
        up(conn, "snapshot_run", [{"snapshot_id": "old", "started_at": OLD}, {"snapshot_id": "kept",
                                                                              "started_at": CUTOFF}])  # fmt: skip
        for table in ("agent_state_snapshot", "session_availability_snapshot"):
            up(conn, table, [{"snapshot_id": "old", "snapshot_at": OLD, "agent_id": "a1"},
                             {"snapshot_id": "kept", "snapshot_at": CUTOFF, "agent_id": "a1"}])  # fmt: skip
        up(conn, "chat_slots_snapshot", [{"snapshot_id": "old", "snapshot_at": OLD},
                                         {"snapshot_id": "kept", "snapshot_at": CUTOFF}])  # fmt: skip
        up(conn, "ingest_error", [{"error_id": "old", "at": OLD}, {"error_id": "kept", "at": CUTOFF}])
        up(conn, "agent_skill", [
            {"agent_id": "a1", "skill_id": "closed-old", "valid_from": OLD - timedelta(days=9), "valid_to": OLD},
            {"agent_id": "a1", "skill_id": "closed-kept", "valid_from": OLD - timedelta(days=9), "valid_to": CUTOFF},
            {"agent_id": "a1", "skill_id": "open", "valid_from": OLD - timedelta(days=9), "valid_to": None},
        ])  # fmt: skip
        up(conn, "chat_event", [
            {"chat_id": "ended-long-ago", "event_id": 0, "ingested_at": OLD},
            {"chat_id": "spans-cutoff", "event_id": 0, "ingested_at": OLD},
            {"chat_id": "spans-cutoff", "event_id": 1, "ingested_at": CUTOFF},
        ])  # fmt: skip
        up(conn, "chat_session", [
            {"chat_id": "ended-long-ago", "polling_stopped_at": OLD},  # its only event is old: both go
            {"chat_id": "spans-cutoff", "polling_stopped_at": OLD},  # an event at the cutoff remains: kept
            {"chat_id": "never-had-events", "polling_stopped_at": OLD - timedelta(days=3)},
            {"chat_id": "stopped-at-cutoff", "polling_stopped_at": CUTOFF},
            {"chat_id": "still-polled", "polling_stopped_at": None},  # first seen long ago, still open
        ])  # fmt: skip


def test_retention_deletes_exactly_the_rows_older_than_the_cutoff_in_every_table(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    _seed(warehouse)

    result = apply_retention(warehouse, ParquetStore(str(tmp_path / "parquet")), days=2, clock=lambda: NOW)

    assert result.cutoff == CUTOFF
    assert result.rows == {
        "chat_event": 2, "agent_state_snapshot": 1, "session_availability_snapshot": 1, "chat_slots_snapshot": 1,
        "ingest_error": 1, "snapshot_run": 1, "agent_skill": 1, "chat_session": 2,
        "agent_state_interval_store": 0, "agent_state_open": 0,  # never built here (tests/reporting covers them)
    }  # fmt: skip
    for table in ("snapshot_run", "chat_slots_snapshot", "ingest_error"):
        assert keys(warehouse, table) == {"kept"}, table
    for table in ("agent_state_snapshot", "session_availability_snapshot"):
        assert keys(warehouse, table) == {("kept", "a1")}, table
    assert {skill for _, skill, _ in keys(warehouse, "agent_skill")} == {"closed-kept", "open"}
    assert keys(warehouse, "chat_event") == {("spans-cutoff", 1)}
    assert keys(warehouse, "chat_session") == {"spans-cutoff", "stopped-at-cutoff", "still-polled"}


def test_unset_retention_deletes_nothing_anywhere(warehouse: Warehouse, tmp_path: Path) -> None:
    _seed(warehouse)
    store = ParquetStore(str(tmp_path / "parquet"))
    store.write_fact("chat_slots_snapshot", "old", date(2020, 1, 1), _slots("old", OLD))
    before = {table: keys(warehouse, table) for table in schema.TABLES}

    result = apply_retention(warehouse, store, days=retention_days_from_env({}), clock=lambda: NOW)

    assert (result.cutoff, result.rows, result.partitions) == (None, {}, {})
    assert {table: keys(warehouse, table) for table in schema.TABLES} == before
    assert len(store.fact_files("chat_slots_snapshot")) == 1


def test_a_large_backlog_is_deleted_in_batches_until_none_is_left(warehouse: Warehouse) -> None:
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "chat_event", [
            {"chat_id": f"c{i % 3}", "event_id": i, "ingested_at": OLD - timedelta(hours=i)} for i in range(10)
        ] + [{"chat_id": "c0", "event_id": 99, "ingested_at": CUTOFF + TINY}])  # fmt: skip

    counts = delete_old_rows(warehouse, CUTOFF, batch_rows=3)

    assert counts["chat_event"] == 10
    assert keys(warehouse, "chat_event") == {("c0", 99)}


# ------------------------------------------------------------------ the Parquet tree


def _slots(snapshot_id: str, at: datetime) -> pa.Table:
    return pa.table({"snapshot_id": [snapshot_id], "snapshot_at": pa.array([at], type=schema.TIMESTAMP_TYPE),
                     "available_slots": [3]})  # fmt: skip


def test_old_day_folders_of_facts_and_reports_are_dropped_and_the_rest_kept(warehouse: Warehouse, tmp_path: Path):
    store = ParquetStore(str(tmp_path / "parquet"))
    days = [date(2026, 11, 20), date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27)]
    for day in days:
        store.write_fact("chat_slots_snapshot", f"{day:%Y%m%d}T0000Z", day, _slots("s", OLD))
        store.write_partition("agent_time_in_state_daily", day, pa.table({"seconds": [1.0]}))
    store.write_dimension("skill", pa.table({"skill_id": ["9"], "skill_name": ["Sales"],
                                             "first_seen_at": pa.array([OLD], type=schema.TIMESTAMP_TYPE),
                                             "last_seen_at": pa.array([OLD], type=schema.TIMESTAMP_TYPE)}))  # fmt: skip

    result = apply_retention(warehouse, store, days=2, clock=lambda: NOW)

    assert result.partitions["chat_slots_snapshot"] == 2
    assert result.partitions["agent_time_in_state_daily"] == 2
    root = Path(store.root)
    for folder in ("chat_slots_snapshot", "agent_time_in_state_daily"):
        assert sorted(os.listdir(root / folder)) == ["date=2026-11-25", "date=2026-11-27"], folder
    assert pq.read_table(root / "skill" / "current.parquet").num_rows == 1, "dimensions are not partitioned"
    assert sorted(os.listdir(root)) == ["agent_time_in_state_daily", "chat_slots_snapshot", "skill"]


# ------------------------------------------------------------------ after real snapshot runs


def test_after_real_runs_sql_and_parquet_keep_the_same_rows_from_the_cutoff_on(simulator, tmp_path: Path) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    store = ParquetStore(str(tmp_path / "parquet"))
    env = {"LP_STATE_DIR": str(tmp_path / "state"), "LP_SIMULATOR_LOGINS": "6"}
    start = simulator.clock.now()
    with connect(env, simulator=simulator) as conn:
        for at in (start, start + timedelta(minutes=1), start + timedelta(days=2)):
            simulator.clock.set(at=at, paused=True)
            assert run_snapshot(conn, warehouse, store) is not None
    with warehouse.engine.connect() as db:
        events_before = db.execute(sa.select(sa.func.count()).select_from(schema.TABLES["chat_event"])).scalar_one()

    result = apply_retention(warehouse, store, days=1, clock=simulator.clock.now)

    assert result.cutoff == datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert result.rows["snapshot_run"] == 2 and result.rows["agent_state_snapshot"] > 0
    assert 0 < result.rows["chat_event"] <= events_before
    for table in schema.FACT_TABLES:
        files = store.fact_files(table)
        assert all(f"date={start.date() + timedelta(days=2)}" in path for path in files), table
        with warehouse.engine.connect() as db:
            in_sql = db.execute(sa.select(sa.func.count()).select_from(schema.TABLES[table])).scalar_one()
        assert sum(pq.read_metadata(path).num_rows for path in files) == in_sql, table
    warehouse.dispose()


def test_an_interrupted_compaction_of_an_old_day_does_not_bring_the_day_back_after_retention(
    warehouse: Warehouse, tmp_path: Path, monkeypatch
) -> None:
    store = ParquetStore(str(tmp_path / "parquet"))
    old_day = date(2026, 11, 20)
    for minute in range(3):
        store.write_fact("chat_slots_snapshot", f"20261120T00{minute:02d}00Z-0", old_day, _slots("s", OLD))
    with killed_between_fallback_renames(monkeypatch):
        compact_partition(store, "chat_slots_snapshot", old_day, swap_mode="rename")

    result = apply_retention(warehouse, store, days=2, clock=lambda: NOW)

    assert result.partitions["chat_slots_snapshot"] == 1
    assert os.listdir(store.root) == ["chat_slots_snapshot"], "no staging, retired or resurrected day is left"
    assert os.listdir(Path(store.root) / "chat_slots_snapshot") == []
