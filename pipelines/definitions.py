"""The one ``dg.Definitions`` that ``workspace.yaml`` loads: ingest assets and checks, job, schedule, resources."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

import dagster as dg

from assets import agents, chats, runs, session
from assets.checks import INGEST_CHECKS
from assets.freshness import with_snapshot_freshness
from assets.reporting import REPORTING_ASSETS
from pipelines.maintenance.jobs import maintenance_job, maintenance_schedule
from pipelines.maintenance.replay_job import replay_job, replay_schedule
from pipelines.maintenance.resources import maintenance_resources_from_env
from pipelines.resources import DEFAULT_SNAPSHOT_CRON, resources_from_env
from pipelines.run_guard import skip_while_in_progress
from pipelines.sensors import alert_resources_from_env, run_failure_alert

INGEST_ASSETS = [
    agents.available_agents,
    session.session_availability_snapshot,
    session.chat_slots_snapshot,
    chats.chat_session,
    chats.chat_event,
    runs.snapshot_run,
]

snapshot_job = dg.define_asset_job(
    "snapshot_job",
    selection=dg.AssetSelection.assets(*INGEST_ASSETS),
    executor_def=dg.in_process_executor,
    tags={"liveperson/ingest": "snapshot"},
    description="One poll of every ingest asset: one process, one client, one warehouse lock per run.",
)


@dg.schedule(
    job=snapshot_job,
    cron_schedule=os.environ.get("SNAPSHOT_CRON", DEFAULT_SNAPSHOT_CRON),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def snapshot_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Poll on ``SNAPSHOT_CRON``, but never start a run while the previous one is still going."""
    return skip_while_in_progress(context, "snapshot_job") or dg.RunRequest()


reporting_job = dg.define_asset_job(
    "reporting_job",
    selection=dg.AssetSelection.assets(*REPORTING_ASSETS),
    description="One UTC day of time in state, utilization and the dashboard (backfill any past day).",
)


@dg.schedule(
    job=reporting_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def reporting_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Just after midnight UTC, the day that has just ended (the partitions include today, still partial)."""
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=day, partition_key=day)


def build_definitions(environ: Mapping[str, str] | None = None) -> dg.Definitions:
    """The project's definitions with resources read from ``environ`` (default: the process environment)."""
    return dg.Definitions(
        assets=[*with_snapshot_freshness(INGEST_ASSETS, environ), *REPORTING_ASSETS],
        asset_checks=INGEST_CHECKS,
        jobs=[snapshot_job, reporting_job, maintenance_job, replay_job],
        schedules=[snapshot_schedule, reporting_schedule, maintenance_schedule, replay_schedule],
        sensors=[run_failure_alert],
        resources={
            **resources_from_env(environ),
            **maintenance_resources_from_env(environ),
            **alert_resources_from_env(environ),
        },
    )


defs = build_definitions()
