"""maintenance_job's storage tasks: closed days compacted, RETENTION_DAYS applied, both under the writer lock."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.definitions import build_definitions
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse

TODAY = datetime.now(UTC).date()
RUNS_PER_DAY = 3



@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Warehouse, ParquetStore]:
    """A warehouse and Parquet store holding slot snapshots of today, yesterday and ten days ago."""
    url, root = f"sqlite:///{tmp_path}/warehouse.db", str(tmp_path / "parquet")
    monkeypatch.setenv("WAREHOUSE_URL", url)
    monkeypatch.setenv("PARQUET_ROOT", root)
    monkeypatch.delenv("RETENTION_DAYS", raising=False)
    warehouse, parquet = Warehouse(url), ParquetStore(root)
    warehouse.migrate()
    for day in (TODAY, TODAY - timedelta(days=1), TODAY - timedelta(days=10)):
        write_runs(warehouse, parquet, day)
    return warehouse, parquet


def write_runs(warehouse: Warehouse, parquet: ParquetStore, day: date) -> None:
    """``RUNS_PER_DAY`` exported runs of ``day``, each with its chat_slots_snapshot row in SQL and in Parquet."""
    for minute in range(RUNS_PER_DAY):
        at = datetime(day.year, day.month, day.day, 12, minute, tzinfo=UTC)
        snapshot_id = f"{at:%Y%m%dT%H%M%SZ}-0000000{minute}"
        slots = [{"snapshot_id": snapshot_id, "snapshot_at": at, "available_slots": minute}]
        run = {
            "snapshot_id": snapshot_id,
            "started_at": at,
            "finished_at": at,
            "status": "ok",
            "parquet_written_at": at,
        }
        with warehouse.begin() as conn:
            warehouse.upsert(conn, "chat_slots_snapshot", slots)
            warehouse.upsert(conn, "snapshot_run", [run])
        with warehouse.engine.connect() as conn:
            parquet.write_fact(
                "chat_slots_snapshot",
                snapshot_id,
                day,
                warehouse.read_table(conn, "chat_slots_snapshot", {"snapshot_id": snapshot_id}),
            )


def files_of(parquet: ParquetStore, day: date) -> list[str]:
    folder = Path(parquet.root) / "chat_slots_snapshot" / f"date={day.isoformat()}"
    return sorted(path.name for path in folder.glob("*.parquet")) if folder.exists() else []


def slots_in_parquet(parquet: ParquetStore) -> dict[date, int]:
    rows = duckdb.sql(
        f"select date, count(*) from read_parquet('{parquet.root}/chat_slots_snapshot/*/*.parquet', "
        "hive_partitioning=true) group by date"
    ).fetchall()
    return dict(rows)


def maintenance(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return build_definitions().resolve_job_def("maintenance_job").execute_in_process(instance=instance)


def op_metadata(result: dg.ExecuteInProcessResult, op: str) -> dict:
    [materialization] = [event for event in result.events_for_node(op) if event.event_type_value == "STEP_OUTPUT"]
    return {key: value.value for key, value in materialization.step_output_data.metadata.items()}


def test_closed_days_become_one_file_with_the_same_rows_and_today_is_left_alone(instance, storage):
    _warehouse, parquet = storage
    before = slots_in_parquet(parquet)

    result = maintenance(instance)

    assert result.success
    yesterday = TODAY - timedelta(days=1)
    assert len(files_of(parquet, yesterday)) == 1 and files_of(parquet, yesterday)[0].startswith("compacted-")
    assert len(files_of(parquet, TODAY)) == RUNS_PER_DAY
    assert slots_in_parquet(parquet) == before
    metadata = op_metadata(result, "compact_parquet")
    assert metadata["partitions_by_status"]["compacted"] >= 2  # yesterday and ten days ago, per fact table present
    assert metadata["files_removed"] >= 2 * (RUNS_PER_DAY - 1)


def test_without_retention_days_nothing_is_deleted(instance, storage):
    warehouse, parquet = storage

    result = maintenance(instance)

    assert op_metadata(result, "apply_storage_retention")["rows_deleted"] == 0
    with warehouse.engine.connect() as conn:
        assert warehouse.read_table(conn, "chat_slots_snapshot").num_rows == 3 * RUNS_PER_DAY
    assert sum(slots_in_parquet(parquet).values()) == 3 * RUNS_PER_DAY


def test_retention_days_drop_older_rows_and_partitions_in_sql_and_parquet(instance, storage, monkeypatch):
    warehouse, parquet = storage
    monkeypatch.setenv("RETENTION_DAYS", "3")

    result = maintenance(instance)

    assert result.success
    old_day = TODAY - timedelta(days=10)
    assert old_day not in slots_in_parquet(parquet)
    with warehouse.engine.connect() as conn:
        kept = warehouse.read_table(conn, "chat_slots_snapshot").column("snapshot_at").to_pylist()
    assert len(kept) == 2 * RUNS_PER_DAY and min(kept).date() == TODAY - timedelta(days=1)
    metadata = op_metadata(result, "apply_storage_retention")
    assert metadata["rows_deleted_by_table"]["chat_slots_snapshot"] == RUNS_PER_DAY
    assert metadata["rows_deleted_by_table"]["snapshot_run"] == RUNS_PER_DAY


def test_a_nonsense_retention_setting_fails_that_task_naming_the_variable(instance, storage, monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS", "ninety")

    result = (
        build_definitions()
        .resolve_job_def("maintenance_job")
        .execute_in_process(instance=instance, raise_on_error=False)
    )

    assert not result.success
    [failure] = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "apply_storage_retention"
    assert "RETENTION_DAYS" in failure.event_specific_data.error.to_string()


def test_storage_tasks_wait_for_a_run_holding_the_writer_lock_and_fail_loudly(instance, storage, monkeypatch):
    warehouse, _parquet = storage
    monkeypatch.setattr("pipelines.maintenance.storage_ops.LOCK_WAIT_S", 0.2)

    with warehouse.writer_lock(1.0) as acquired:
        assert acquired
        result = (
            build_definitions()
            .resolve_job_def("maintenance_job")
            .execute_in_process(instance=instance, raise_on_error=False)
        )

    failed = {event.step_key for event in result.all_events if event.event_type_value == "STEP_FAILURE"}
    assert "compact_parquet" in failed
    assert "prune_dagster_runs" not in failed


def test_the_planner_has_statistics_after_maintenance(instance, storage):
    warehouse, _parquet = storage

    assert maintenance(instance).success

    with warehouse.engine.connect() as conn:
        tables = {row[0] for row in conn.exec_driver_sql("select tbl from sqlite_stat1")}
    assert {"snapshot_run", "chat_slots_snapshot"} <= tables
