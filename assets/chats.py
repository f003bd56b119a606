"""Chat sessions of the monitored logins, and every chat's events polled incrementally from its cursor."""

from collections.abc import Iterator

import dagster as dg

from assets.metadata import materialize_step
from pipelines.ingest import SnapshotRunner
from pipelines.resources import SnapshotRunResource


@dg.asset(deps=["agent_state_snapshot"], output_required=False, group_name="ingest")
def chat_session(context: dg.AssetExecutionContext, snapshot: SnapshotRunResource) -> Iterator[dg.MaterializeResult]:
    """One row per chat: who monitors it, its info, and its polling cursor."""
    yield from materialize_step(context, snapshot, SnapshotRunner.chat_sessions, "chat_session")


@dg.asset(deps=["chat_session"], output_required=False, group_name="ingest")
def chat_event(context: dg.AssetExecutionContext, snapshot: SnapshotRunResource) -> Iterator[dg.MaterializeResult]:
    """The new events of every open chat since its stored cursor; events and cursor committed together."""
    yield from materialize_step(context, snapshot, SnapshotRunner.chat_events, "chat_event")
