"""Chat sessions of the monitored logins, and every chat's events polled incrementally from its cursor."""

from collections.abc import Iterator

import dagster as dg

from assets.metadata import table_metadata
from pipelines.resources import SnapshotRunResource


@dg.asset(deps=["agent_state_snapshot"], output_required=False, group_name="ingest")
def chat_session(context: dg.AssetExecutionContext, snapshot: SnapshotRunResource) -> Iterator[dg.MaterializeResult]:
    """One row per chat: who monitors it, its info, and its polling cursor."""
    runner = snapshot.runner
    if runner is None:
        context.log.warning(f"not polled: {snapshot.skip_reason}")
        return
    step = runner.chat_sessions()
    yield dg.MaterializeResult(metadata=table_metadata("chat_session", step.rows.get("chat_session", 0), runner, step))


@dg.asset(deps=["chat_session"], output_required=False, group_name="ingest")
def chat_event(context: dg.AssetExecutionContext, snapshot: SnapshotRunResource) -> Iterator[dg.MaterializeResult]:
    """The new events of every open chat since its stored cursor; events and cursor committed together."""
    runner = snapshot.runner
    if runner is None:
        context.log.warning(f"not polled: {snapshot.skip_reason}")
        return
    step = runner.chat_events()
    yield dg.MaterializeResult(metadata=table_metadata("chat_event", step.rows.get("chat_event", 0), runner, step))
