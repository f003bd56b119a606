"""The run-health check: a run that dead-lettered payloads, or ended ``partial``, shows as a WARN on ``snapshot_run``.

WARN, not ERROR: such a run did what the contract asks (kept the unreadable payloads, went on with the rest), so it
must not block anything downstream; but an operator should see it, with where the errors came from.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from assets.dead_letters import dead_letters_of
from pipelines.resources import SnapshotRunResource
from pipelines.storage import schema


@dg.asset_check(
    asset="snapshot_run",
    description="Warns when the run dead-lettered payloads (errors > 0) or ended partial; names the endpoints.",
)
def snapshot_run_without_errors(snapshot: SnapshotRunResource) -> dg.AssetCheckResult:
    runner = snapshot.runner
    assert runner is not None and runner.snapshot_id is not None
    runs = schema.TABLES["snapshot_run"]
    with runner.warehouse.engine.connect() as conn:
        status, error_count = conn.execute(
            sa.select(runs.c.status, runs.c.errors).where(runs.c.snapshot_id == runner.snapshot_id)
        ).one()
    dead_letters = dead_letters_of(runner.warehouse, runner.snapshot_id)
    metadata: dict[str, object] = {
        "snapshot_id": runner.snapshot_id,
        "status": status,
        "errors": error_count,
        "dead_letters_by_endpoint": dead_letters.by_endpoint,
    }
    if dead_letters.first_error:
        metadata["first_error"] = dead_letters.first_error
    return dg.AssetCheckResult(
        passed=error_count == 0 and status != "partial",
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )
