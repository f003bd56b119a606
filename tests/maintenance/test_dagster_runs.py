"""Pruning Dagster's run history: which runs go, which stay, and what goes with them, on a real instance."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from pipelines.definitions import build_definitions
from pipelines.liveperson.config import CONNECTION_VARIABLES
from pipelines.maintenance.dagster_runs import RetentionConfigError, RetentionPolicy, prune_runs
from pipelines.maintenance.jobs import maintenance_job, maintenance_schedule
from pipelines.maintenance.resources import RunRetentionResource
from pipelines.maintenance.storage_ops import StorageRetentionResource
from pipelines.resources import ParquetResource, WarehouseResource


@pytest.fixture
def embedded_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """snapshot_job's embedded defaults (simulator + SQLite + Parquet) in a temporary folder."""
    for name in CONNECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path}/warehouse.db")
    monkeypatch.setenv("PARQUET_ROOT", str(tmp_path / "parquet"))
    monkeypatch.setenv("LP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LP_SIMULATOR_START", "2026-11-26T10:00:00+00:00")
    monkeypatch.setenv("LP_SIMULATOR_LOGINS", "3")


@dg.op
def say_hello(context: dg.OpExecutionContext) -> None:
    context.log.info("hello")
    print("captured stdout")


@dg.op
def break_down() -> None:
    raise RuntimeError("this run fails")


def executed_run(instance: dg.DagsterInstance, job_name: str, *, fails: bool = False) -> str:
    """A real, finished run of a one-op job named ``job_name`` (with events and captured logs)."""
    body = break_down if fails else say_hello

    @dg.job(name=job_name, executor_def=dg.in_process_executor)
    def job() -> None:
        body()

    return job.execute_in_process(instance=instance, raise_on_error=False).run_id


def run_ids(instance: dg.DagsterInstance, job_name: str) -> set[str]:
    return {record.dagster_run.run_id for record in instance.get_run_records(dg.RunsFilter(job_name=job_name))}


def in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def test_old_snapshot_runs_are_deleted_with_their_event_logs_and_files(instance, embedded_env):
    job = build_definitions().resolve_job_def("snapshot_job")
    old = job.execute_in_process(instance=instance).run_id
    newest = job.execute_in_process(instance=instance).run_id
    assert instance.all_logs(old)
    shard = Path(instance.event_log_storage.path_for_shard(old))
    captured = Path(instance.root_directory) / "storage" / old
    assert shard.exists() and captured.exists()
    materializations = dg.AssetRecordsFilter(asset_key=dg.AssetKey("snapshot_run"))
    check = dg.AssetCheckKey(dg.AssetKey("snapshot_run"), "snapshot_run_without_errors")

    result = prune_runs(instance, now=in_days(8))

    assert result.deleted_by_status == {"SUCCESS": 1}
    assert result.deleted_by_job == {"snapshot_job": 1}
    assert instance.get_run_by_id(old) is None
    assert not shard.exists()  # the run's whole event log: one SQLite file per run on this storage
    assert not captured.exists()
    remaining = instance.fetch_materializations(materializations, limit=10).records
    assert [record.run_id for record in remaining] == [newest]
    checks = instance.event_log_storage.get_asset_check_execution_history(check, limit=10)
    assert [execution.run_id for execution in checks] == [newest]
    assert instance.all_logs(newest)


def test_failed_and_canceled_runs_are_kept_until_their_longer_age(instance):
    failed = executed_run(instance, "snapshot_job", fails=True)
    canceled = create_run_for_test(instance, job_name="snapshot_job", status=dg.DagsterRunStatus.CANCELED).run_id
    succeeded = executed_run(instance, "snapshot_job")
    newest = executed_run(instance, "snapshot_job")

    after_a_week = prune_runs(instance, now=in_days(8))
    assert run_ids(instance, "snapshot_job") == {failed, canceled, newest}
    assert succeeded not in run_ids(instance, "snapshot_job")
    assert after_a_week.deleted_by_status == {"SUCCESS": 1}

    after_a_month = prune_runs(instance, now=in_days(31))
    assert run_ids(instance, "snapshot_job") == {newest}
    assert after_a_month.deleted_by_status == {"FAILURE": 1, "CANCELED": 1}
    assert not Path(instance.event_log_storage.path_for_shard(failed)).exists()


def test_runs_in_progress_are_never_deleted(instance):
    in_progress = {
        create_run_for_test(instance, job_name="snapshot_job", status=status).run_id
        for status in (
            dg.DagsterRunStatus.NOT_STARTED,
            dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED,
            dg.DagsterRunStatus.CANCELING,
        )
    }

    result = prune_runs(instance, RetentionPolicy(days=0, failed_days=0), now=in_days(365))

    assert result.deleted == 0
    assert run_ids(instance, "snapshot_job") == in_progress


def test_recent_runs_are_kept_and_reported(instance):
    first = executed_run(instance, "snapshot_job")
    executed_run(instance, "snapshot_job", fails=True)
    executed_run(instance, "maintenance_job")

    result = prune_runs(instance, now=in_days(6.9))

    assert result.deleted == 0
    assert result.kept == 3
    assert result.oldest_kept == instance.get_run_record_by_id(first).create_timestamp


def test_runs_of_other_jobs_are_untouched(instance):
    others = {executed_run(instance, "reporting_job"), executed_run(instance, "some_other_job")}
    executed_run(instance, "snapshot_job")
    executed_run(instance, "snapshot_job")

    result = prune_runs(instance, now=in_days(400))

    assert result.deleted_by_job == {"snapshot_job": 1}
    assert run_ids(instance, "reporting_job") | run_ids(instance, "some_other_job") == others


def test_the_newest_successful_run_of_each_job_is_kept_whatever_its_age(instance):
    executed_run(instance, "snapshot_job")
    newest = executed_run(instance, "snapshot_job")
    maintenance = executed_run(instance, "maintenance_job")
    failed = executed_run(instance, "snapshot_job", fails=True)

    result = prune_runs(instance, now=in_days(1000))

    assert result.deleted_by_status == {"SUCCESS": 1, "FAILURE": 1}
    assert run_ids(instance, "snapshot_job") == {newest}
    assert run_ids(instance, "maintenance_job") == {maintenance}
    assert instance.get_run_by_id(failed) is None


def test_paging_deletes_more_runs_than_one_page(instance):
    runs = [
        create_run_for_test(instance, job_name="snapshot_job", status=dg.DagsterRunStatus.SUCCESS).run_id
        for _ in range(8)
    ]

    result = prune_runs(instance, now=in_days(8), page_size=3)

    assert result.deleted == 7
    assert run_ids(instance, "snapshot_job") == {runs[-1]}


def test_retention_settings_are_validated_naming_the_variable():
    with pytest.raises(RetentionConfigError, match=r"DAGSTER_RUN_RETENTION_DAYS.*'seven'"):
        RunRetentionResource(retention_days="seven").policy()
    with pytest.raises(RetentionConfigError, match=r"DAGSTER_FAILED_RUN_RETENTION_DAYS.*'-1'"):
        RunRetentionResource(failed_retention_days="-1").policy()
    with pytest.raises(RetentionConfigError, match="must be at least DAGSTER_RUN_RETENTION_DAYS"):
        RunRetentionResource(retention_days="14", failed_retention_days="3").policy()
    assert RunRetentionResource().policy() == RetentionPolicy(days=7, failed_days=30)


def test_maintenance_job_prunes_in_process_and_reports_figures(instance, tmp_path):
    old = executed_run(instance, "snapshot_job")
    newest = executed_run(instance, "snapshot_job")

    result = maintenance_job.execute_in_process(
        instance=instance,
        resources={
            "run_retention": RunRetentionResource(retention_days="0"),
            "warehouse": WarehouseResource(url=f"sqlite:///{tmp_path}/warehouse.db"),
            "parquet": ParquetResource(root=str(tmp_path / "parquet")),
            "storage_retention": StorageRetentionResource(),
        },
    )

    assert result.success
    assert instance.get_run_by_id(old) is None
    assert run_ids(instance, "snapshot_job") == {newest}
    assert run_ids(instance, "maintenance_job") == {result.run_id}  # in progress while it pruned
    [output] = [e for e in result.events_for_node("prune_dagster_runs") if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.step_output_data.metadata
    assert metadata["runs_deleted"].value == 1
    assert metadata["runs_kept"].value == 2
    assert metadata["runs_deleted_by_status"].value == {"SUCCESS": 1}


def test_maintenance_job_reads_retention_from_the_environment(instance, monkeypatch):
    executed_run(instance, "snapshot_job")
    executed_run(instance, "snapshot_job")

    monkeypatch.setenv("DAGSTER_RUN_RETENTION_DAYS", "0")
    pruned = build_definitions().resolve_job_def("maintenance_job").execute_in_process(instance=instance)
    assert pruned.success
    assert len(run_ids(instance, "snapshot_job")) == 1

    monkeypatch.setenv("DAGSTER_FAILED_RUN_RETENTION_DAYS", "a month")
    job = build_definitions().resolve_job_def("maintenance_job")
    failed = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "DAGSTER_FAILED_RUN_RETENTION_DAYS must be a number of days" in failure.step_failure_data.error.to_string()


def test_maintenance_runs_daily_at_half_past_midnight_utc_by_default():
    defs = build_definitions()
    schedule = defs.resolve_schedule_def("maintenance_schedule")
    assert schedule.job_name == "maintenance_job"
    assert schedule.cron_schedule == "30 0 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert maintenance_schedule.job_name == defs.resolve_job_def("maintenance_job").name


def test_maintenance_schedule_skips_while_a_maintenance_run_is_in_progress(instance):
    assert isinstance(maintenance_schedule(dg.build_schedule_context(instance=instance)), dg.RunRequest)
    create_run_for_test(instance, job_name="maintenance_job", status=dg.DagsterRunStatus.STARTED)
    decision = maintenance_schedule(dg.build_schedule_context(instance=instance))
    assert isinstance(decision, dg.SkipReason)
    assert "still in progress" in decision.skip_message
