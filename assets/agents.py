"""Available agents: the state snapshot and the dimensions derived from it."""

from collections.abc import Iterator

import dagster as dg

from assets.metadata import table_metadata
from pipelines.resources import SnapshotRunResource

AGENT_TABLES = ("agent_state_snapshot", "agent", "skill", "agent_skill")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "agent_state_snapshot",
            description="Every agent's chat/voice state, max chats and elapsed "
            "time in state, one row per agent per snapshot.",
            skippable=True,
            group_name="ingest",
        ),
        dg.AssetSpec(
            "agent",
            description="Current agent dimension (first/last seen, group, monitored).",
            skippable=True,
            group_name="ingest",
        ),
        dg.AssetSpec("skill", description="Skill dimension.", skippable=True, group_name="ingest"),
        dg.AssetSpec(
            "agent_skill",
            description="Agent-skill membership with valid_from/valid_to.",
            skippable=True,
            group_name="ingest",
        ),
    ],
    can_subset=False,
)
def available_agents(
    context: dg.AssetExecutionContext, snapshot: SnapshotRunResource
) -> Iterator[dg.MaterializeResult]:
    """One ``availableAgents`` read for the whole account; its arrival time is the snapshot's ``snapshot_at``."""
    runner = snapshot.open_run(context.log)  # the run's first step: lock, connect, begin
    if runner is None:
        context.log.warning(f"not polled: {snapshot.skip_reason}")
        return
    step = runner.available_agents()
    for table in AGENT_TABLES:
        rows = step.rows.get(table, 0)
        yield dg.MaterializeResult(asset_key=table, metadata=table_metadata(table, rows, runner, step))
