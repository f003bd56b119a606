"""``maintenance_job`` and its daily schedule: the housekeeping that keeps an unattended deployment bounded.

The job's ops are independent (no inputs, no outputs between them): each is one housekeeping task, a failure of
one does not stop the others, and a new task (Parquet compaction, warehouse retention) is one more op called in
``maintenance_job``'s body.
"""

import dagster as dg

from pipelines.maintenance.dagster_runs import prune_runs
from pipelines.maintenance.resources import RunRetentionResource
from pipelines.maintenance.storage_ops import analyze_warehouse, apply_storage_retention, compact_parquet
from pipelines.run_guard import skip_while_in_progress


@dg.op(out=dg.Out(dg.Nothing))
def prune_dagster_runs(context: dg.OpExecutionContext, run_retention: RunRetentionResource) -> None:
    """Delete old runs of the often-running jobs (see ``dagster_runs.PRUNED_JOBS``) with their event logs."""
    policy = run_retention.policy()
    result = prune_runs(context.instance, policy)
    context.log.info(
        f"deleted {result.deleted} runs {dict(result.deleted_by_status)} of {', '.join(policy.jobs)}: successful "
        f"before {result.success_cutoff:%Y-%m-%d %H:%M}, failed or canceled before "
        f"{result.failed_cutoff:%Y-%m-%d %H:%M} UTC; {result.kept} kept, oldest from "
        f"{result.oldest_kept.isoformat() if result.oldest_kept else '-'}"
    )
    context.add_output_metadata(
        {
            "runs_deleted": result.deleted,
            "runs_deleted_by_status": dict(result.deleted_by_status),
            "runs_deleted_by_job": dict(result.deleted_by_job),
            "runs_kept": result.kept,
            "oldest_kept": dg.MetadataValue.timestamp(result.oldest_kept) if result.oldest_kept else None,
            "retention_days": policy.days,
            "failed_retention_days": policy.failed_days,
        }
    )


@dg.job(
    executor_def=dg.in_process_executor,
    tags={"liveperson/maintenance": "daily"},
    description=(
        "Daily housekeeping: prune Dagster's run history, compact closed Parquet days, apply RETENTION_DAYS, "
        "refresh the planner's statistics."
    ),
)
def maintenance_job() -> None:
    prune_dagster_runs()
    compact_parquet()
    apply_storage_retention()
    analyze_warehouse()


@dg.schedule(
    job=maintenance_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def maintenance_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """00:30 UTC, after reporting_job (00:15); skipped while the previous maintenance run still works through a
    backlog (deleting a run takes 0.2-0.5 s on SQLite, so a first run on a long history can outlast a day)."""
    return skip_while_in_progress(context, maintenance_job.name) or dg.RunRequest()
