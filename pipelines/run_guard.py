"""Schedules skip a tick while their job's previous run is still going; one place says what "still going" means."""

import dagster as dg

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def skip_while_in_progress(context: dg.ScheduleEvaluationContext, job_name: str) -> dg.SkipReason | None:
    """A ``SkipReason`` naming the run of ``job_name`` that is still in progress, else None."""
    running = context.instance.get_run_records(filters=dg.RunsFilter(job_name=job_name, statuses=IN_PROGRESS), limit=1)
    if running:
        return dg.SkipReason(f"{job_name} run {running[0].dagster_run.run_id} is still in progress")
    return None
