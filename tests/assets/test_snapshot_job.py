"""``snapshot_job`` as Dagster runs it: every ingest asset materialized with metadata, checks passing, schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from pipelines.definitions import build_definitions, reporting_schedule, snapshot_schedule
from pipelines.resources import interval_seconds

INGEST_KEYS = {
    "agent_state_snapshot",
    "agent",
    "skill",
    "agent_skill",
    "session_availability_snapshot",
    "chat_slots_snapshot",
    "chat_session",
    "chat_event",
    "snapshot_run",
}


def run_job(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return build_definitions().resolve_job_def("snapshot_job").execute_in_process(instance=instance)


def test_snapshot_job_materializes_every_ingest_asset_with_row_counts_and_schema(embedded_env):
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(instance)
    assert result.success
    materialized = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    assert set(materialized) == INGEST_KEYS
    for key, event in materialized.items():
        metadata = event.materialization.metadata
        assert "dagster/row_count" in metadata, key
        assert metadata["dagster/column_schema"].value.columns, key
    events = materialized["chat_event"].materialization.metadata
    assert events["dagster/row_count"].value > 0
    assert materialized["agent_state_snapshot"].materialization.metadata["dagster/row_count"].value == 50


def test_every_asset_check_passes_on_a_healthy_run(embedded_env):
    with dg.DagsterInstance.ephemeral() as instance:
        run_job(instance)
        result = run_job(instance)
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 8
    failed = [(e.asset_check_key.name, e.metadata) for e in evaluations if not e.passed]
    assert failed == []


def test_schedule_skips_while_a_snapshot_run_is_in_progress():
    with dg.instance_for_test() as instance:
        assert isinstance(snapshot_schedule(dg.build_schedule_context(instance=instance)), dg.RunRequest)
        create_run_for_test(instance, job_name="snapshot_job", status=dg.DagsterRunStatus.STARTED)
        decision = snapshot_schedule(dg.build_schedule_context(instance=instance))
    assert isinstance(decision, dg.SkipReason)
    assert "still in progress" in decision.skip_message


def test_schedule_interval_is_read_from_the_cron_expression():
    assert interval_seconds("* * * * *") == 60
    assert interval_seconds("*/5 * * * *") == 300
    assert interval_seconds("0 * * * *") == 3600


def test_reporting_schedule_builds_the_day_that_has_just_ended():
    tick = datetime(2026, 11, 27, 0, 15, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        request = reporting_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick))
    assert request.partition_key == "2026-11-26"
