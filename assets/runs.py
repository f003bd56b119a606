"""The run itself: closes the snapshot with an honest status once every ingest step has run."""

from collections.abc import Iterator

import dagster as dg

from assets.dead_letters import dead_letters_of
from assets.metadata import column_schema
from pipelines.resources import SnapshotRunResource


@dg.asset(
    deps=["agent_state_snapshot", "session_availability_snapshot", "chat_slots_snapshot", "chat_event"],
    output_required=False,
    group_name="ingest",
)
def snapshot_run(context: dg.AssetExecutionContext, snapshot: SnapshotRunResource) -> Iterator[dg.MaterializeResult]:
    """One row per run: status (ok, partial, failed), counts, and when its Parquet export completed."""
    runner = snapshot.runner
    if runner is None:
        context.log.warning(f"not polled: {snapshot.skip_reason}")
        return
    snapshot.finish()
    summary = runner.summary
    assert summary is not None
    metadata = {
        "dagster/row_count": 1,
        "dagster/column_schema": column_schema("snapshot_run"),
        "snapshot_id": summary.snapshot_id,
        "status": summary.status,
        "agents": summary.agents,
        "chats": summary.chats,
        "events": summary.events,
        "run_errors": summary.errors,
    }
    if summary.status == "failed":
        # The description is what the run's failure (and the alert) shows: name the first cause, not just the fact.
        dead_letters = dead_letters_of(runner.warehouse, summary.snapshot_id)
        cause = f"; first error: {dead_letters.first_error}" if dead_letters.first_error else ""
        metadata["dead_letters_by_endpoint"] = dead_letters.by_endpoint
        raise dg.Failure(
            description=f"snapshot {summary.snapshot_id}: nothing could be read or stored "
            f"({summary.errors} errors){cause}",
            metadata=metadata,
        )
    yield dg.MaterializeResult(metadata=metadata)
