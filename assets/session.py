"""The monitored logins' own session (info and availability) and the account's available chat slots."""

from collections.abc import Iterator

import dagster as dg

from assets.metadata import login_breaker_metadata, materialize_step
from pipelines.ingest import SnapshotRunner
from pipelines.resources import SnapshotRunResource


@dg.asset(deps=["agent_state_snapshot"], output_required=False, group_name="ingest")
def session_availability_snapshot(
    context: dg.AssetExecutionContext, snapshot: SnapshotRunResource
) -> Iterator[dg.MaterializeResult]:
    """Each monitored login's chat and voice availability, one row per login per snapshot.

    Also shows the login breakers open under ``LP_STATE_DIR``: a blocked login answers nothing until reset.
    """
    yield from materialize_step(
        context,
        snapshot,
        SnapshotRunner.session_availability,
        "session_availability_snapshot",
        extra=login_breaker_metadata,
    )


@dg.asset(deps=["agent_state_snapshot"], output_required=False, group_name="ingest")
def chat_slots_snapshot(
    context: dg.AssetExecutionContext, snapshot: SnapshotRunResource
) -> Iterator[dg.MaterializeResult]:
    """How many more chats the account can take (-1 = unlimited), one row per snapshot."""
    yield from materialize_step(context, snapshot, SnapshotRunner.chat_slots, "chat_slots_snapshot")
