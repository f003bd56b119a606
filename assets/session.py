"""The monitored logins' own session (info and availability) and the account's available chat slots."""

from collections.abc import Iterator

import dagster as dg

from assets.metadata import table_metadata
from pipelines.resources import SnapshotRunResource


@dg.asset(deps=["agent_state_snapshot"], output_required=False, group_name="ingest")
def session_availability_snapshot(
    context: dg.AssetExecutionContext, snapshot: SnapshotRunResource
) -> Iterator[dg.MaterializeResult]:
    """Each monitored login's chat and voice availability, one row per login per snapshot."""
    runner = snapshot.runner
    if runner is None:
        context.log.warning(f"not polled: {snapshot.skip_reason}")
        return
    step = runner.session_availability()
    table = "session_availability_snapshot"
    yield dg.MaterializeResult(metadata=table_metadata(table, step.rows.get(table, 0), runner, step))


@dg.asset(deps=["agent_state_snapshot"], output_required=False, group_name="ingest")
def chat_slots_snapshot(
    context: dg.AssetExecutionContext, snapshot: SnapshotRunResource
) -> Iterator[dg.MaterializeResult]:
    """How many more chats the account can take (-1 = unlimited), one row per snapshot."""
    runner = snapshot.runner
    if runner is None:
        context.log.warning(f"not polled: {snapshot.skip_reason}")
        return
    step = runner.chat_slots()
    table = "chat_slots_snapshot"
    yield dg.MaterializeResult(metadata=table_metadata(table, step.rows.get(table, 0), runner, step))
