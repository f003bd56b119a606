"""Materialization metadata shared by the ingest assets: row counts, the column schema, the run's errors."""

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import dagster as dg
import pyarrow as pa

from pipelines.ingest import SnapshotRunner, StepResult
from pipelines.liveperson.breaker_status import breaker_metadata
from pipelines.resources import SnapshotRunResource
from pipelines.storage.schema import ARROW_SCHEMAS


def column_schema(table: str) -> dg.TableSchema:
    """The contract's columns of ``table`` with their Arrow types, as Dagster shows a table schema."""
    schema: pa.Schema = ARROW_SCHEMAS[table]
    return dg.TableSchema(columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in schema])


def table_metadata(table: str, rows: int, runner: SnapshotRunner, step: StepResult) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "dagster/row_count": rows,
        "dagster/column_schema": column_schema(table),
        "snapshot_id": runner.snapshot_id,
        "run_errors": runner.counts["errors"],
        "step_errors": step.errors,
    }
    if table in runner.files:
        metadata["parquet_file"] = dg.MetadataValue.path(runner.files[table])
    for key, value in step.notes.items():
        metadata[key] = value
    return metadata


def materialize_step(
    context: dg.AssetExecutionContext,
    snapshot: SnapshotRunResource,
    step: Callable[[SnapshotRunner], StepResult],
    table: str,
    extra: Callable[[SnapshotRunner], Mapping[str, Any]] | None = None,
) -> Iterator[dg.MaterializeResult]:
    """Run one ingest step of the run and report its table; yield nothing when the run skips (lock, back-off).

    ``extra`` adds metadata read after the step (e.g. the login breakers the step may have opened).
    """
    runner = snapshot.runner
    if runner is None:
        context.log.warning(f"not polled: {snapshot.skip_reason}")
        return
    result = step(runner)
    metadata = table_metadata(table, result.rows.get(table, 0), runner, result)
    if extra is not None:
        metadata.update(extra(runner))
    yield dg.MaterializeResult(metadata=metadata)


def login_breaker_metadata(runner: SnapshotRunner) -> dict[str, Any]:
    """The login breakers under the run's ``LP_STATE_DIR`` that block a configured login (masked), and stale ones."""
    return breaker_metadata(runner.client.settings)
