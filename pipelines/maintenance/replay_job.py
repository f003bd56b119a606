"""``replay_job`` and its hourly ``replay_schedule``: dead letters re-read after a parser fix (``replay.py``).

Hourly, because a replay that finds nothing new costs one indexed query, while a fixed parser's backlog should land
the same day; the job is also run by hand right after deploying a parser fix (``dagster job execute -m
pipelines.definitions -j replay_job``). It uses the project's resources (warehouse, Parquet, and the ``LP_*``
settings for ``LP_STORE_CHAT_TEXT``) and takes the warehouse writer lock a batch at a time, like a snapshot run:
while a run holds it, replay waits ``lock_wait_s`` and then stops, saying so; the rest waits for the next hour.
"""

from typing import Any

import dagster as dg
from pydantic import Field

from pipelines.liveperson.config import options_from_env
from pipelines.maintenance.replay import BATCH_SIZE, LOCK_WAIT_S, ReplaySummary, replay_dead_letters
from pipelines.resources import LivePersonResource, ParquetResource, WarehouseResource
from pipelines.run_guard import skip_while_in_progress


class ReplayConfig(dg.Config):
    """Run configuration (defaults suit the schedule)."""

    batch_size: int = Field(default=BATCH_SIZE, ge=1, description="dead letters per writer-lock hold")
    lock_wait_s: float = Field(default=LOCK_WAIT_S, ge=0.0, description="how long to wait for a run's lock")


@dg.op(out=dg.Out(dg.Nothing))
def replay_dead_letters_op(
    context: dg.OpExecutionContext,
    config: ReplayConfig,
    liveperson: LivePersonResource,
    warehouse: WarehouseResource,
    parquet: ParquetResource,
) -> None:
    """Re-read every unreplayed dead letter; land what now parses under its original snapshot."""
    store_chat_text = bool(options_from_env(liveperson.as_env())["store_chat_text"])
    store = warehouse.open()
    try:
        summary = replay_dead_letters(
            store,
            parquet.open(),
            store_chat_text=store_chat_text,
            batch_size=config.batch_size,
            lock_wait_s=config.lock_wait_s,
            progress=context.log.info,
        )
    finally:
        store.dispose()
    if summary.lock_busy:
        context.log.warning(summary.headline())
    for failure in summary.failures:
        context.log.info(f"still failing: {failure.error_id} ({failure.endpoint}): {failure.reason}")
    context.add_output_metadata(summary_metadata(summary))


def summary_metadata(summary: ReplaySummary) -> dict[str, Any]:
    """The counts an operator checks in the run's page."""
    return {
        "replayed": summary.replayed,
        "still_failing": summary.failing,
        "still_failing_by_reason": dict(summary.still_failing),
        "examined": summary.examined,
        "rows_landed": dict(summary.rows),
        "cursors_advanced": summary.cursors_advanced,
        "parquet_files_written": summary.parquet_files,
        "parquet_recompacted": summary.parquet_recompacted,
        "parquet_deferred": summary.parquet_deferred,
        "parquet_left_to_export": summary.parquet_left_to_export,
        "lock_busy": summary.lock_busy,
        "summary": dg.MetadataValue.text(summary.headline()),
    }


@dg.job(
    executor_def=dg.in_process_executor,
    tags={"liveperson/maintenance": "replay"},
    description="Re-read dead letters (ingest_error) after a parser fix and land what now parses, once.",
)
def replay_job() -> None:
    replay_dead_letters_op()


@dg.schedule(
    job=replay_job,
    cron_schedule="20 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def replay_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Every hour at :20, unless the previous replay is still going."""
    return skip_while_in_progress(context, replay_job.name) or dg.RunRequest()
