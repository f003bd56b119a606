"""The maintenance job's storage tasks: compact closed Parquet days, apply ``RETENTION_DAYS``, refresh statistics.

Both change files and rows that snapshot runs write, so each takes the warehouse writer lock (the same lock a run
holds) for its whole pass; a run that starts meanwhile waits briefly, then skips, as with two overlapping runs.
A lock held longer than ``LOCK_WAIT_S`` fails the op (the run-failure alert fires) rather than passing silently.
"""

import os
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dagster as dg
import sqlalchemy as sa

from pipelines.resources import ParquetResource, WarehouseResource
from pipelines.storage.compaction import compact_closed_days
from pipelines.storage.retention import RETENTION_ENV, apply_retention, retention_days_from_env
from pipelines.storage.warehouse import Warehouse

LOCK_WAIT_S = 120.0
SQLITE_ANALYSIS_LIMIT = 10_000  # rows sampled per index: statistics good enough for the planner, in seconds
NEEDS_AN_OPERATOR = ("mismatch", "failed")


class StorageRetentionResource(dg.ConfigurableResource):
    """``RETENTION_DAYS``: full UTC days of facts kept in the warehouse and in Parquet; unset keeps everything."""

    retention_days: str | None = None

    def days(self) -> int | None:
        """The validated setting; a ``RetentionConfigError`` names the variable when it holds nonsense."""
        return retention_days_from_env({RETENTION_ENV: self.retention_days or ""})


def storage_resources_from_env(environ: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """``dg.EnvVar("RETENTION_DAYS")`` when it is set, else retention off."""
    environ = os.environ if environ is None else environ
    if environ.get(RETENTION_ENV):
        return {"storage_retention": StorageRetentionResource(retention_days=dg.EnvVar(RETENTION_ENV))}
    return {"storage_retention": StorageRetentionResource()}


@contextmanager
def locked_warehouse(warehouse: WarehouseResource, task: str) -> Iterator[Warehouse]:
    """The migrated warehouse under the writer lock, or ``dg.Failure`` if a run keeps holding it."""
    store = warehouse.open()
    try:
        store.migrate()
        with store.writer_lock(LOCK_WAIT_S) as acquired:
            if not acquired:
                raise dg.Failure(f"{task}: the warehouse writer lock stayed busy for {LOCK_WAIT_S:.0f} s; retry later")
            yield store
    finally:
        store.dispose()


@dg.op(out=dg.Out(dg.Nothing))
def compact_parquet(context: dg.OpExecutionContext, warehouse: WarehouseResource, parquet: ParquetResource) -> None:
    """Rewrite each closed UTC day of every fact table from its per-run files into one file, atomically."""
    with locked_warehouse(warehouse, "compaction") as store:
        results = compact_closed_days(parquet.open(), store)
    by_status = Counter(result.status for result in results)
    compacted = [result for result in results if result.status == "compacted"]
    for result in compacted:
        context.log.info(
            f"compacted {result.table} {result.day}: {result.files_before} files -> {result.files_after}, "
            f"{result.rows} rows, {result.bytes_before} -> {result.bytes_after} bytes ({result.swap})"
        )
    context.add_output_metadata(
        {
            "partitions_by_status": dict(by_status),
            "files_removed": sum(result.files_before - result.files_after for result in compacted),
            "rows_compacted": sum(result.rows for result in compacted),
            "bytes_before": sum(result.bytes_before for result in compacted),
            "bytes_after": sum(result.bytes_after for result in compacted),
        }
    )
    troubled = [result for result in results if result.status in NEEDS_AN_OPERATOR]
    if troubled:
        lines = "; ".join(f"{r.table} {r.day} {r.status}: {r.detail}" for r in troubled)
        raise dg.Failure(f"{len(troubled)} partition(s) kept their per-run files and need a look: {lines}")


@dg.op(out=dg.Out(dg.Nothing))
def apply_storage_retention(
    context: dg.OpExecutionContext,
    warehouse: WarehouseResource,
    parquet: ParquetResource,
    storage_retention: StorageRetentionResource,
) -> None:
    """Drop warehouse rows and Parquet days older than ``RETENTION_DAYS`` (nothing when it is unset)."""
    days = storage_retention.days()
    if days is None:
        context.log.info(f"retention off: {RETENTION_ENV} is unset, everything is kept")
        context.add_output_metadata({"retention_days": None, "rows_deleted": 0, "partitions_dropped": 0})
        return
    with locked_warehouse(warehouse, "retention") as store:
        result = apply_retention(store, parquet.open(), days=days)
    assert result.cutoff is not None
    context.log.info(
        f"retention {days} days (before {result.cutoff:%Y-%m-%d}): deleted {sum(result.rows.values())} rows "
        f"{ {t: n for t, n in result.rows.items() if n} }, dropped {sum(result.partitions.values())} Parquet days"
    )
    context.add_output_metadata(
        {
            "retention_days": days,
            "cutoff": dg.MetadataValue.timestamp(result.cutoff),
            "rows_deleted": sum(result.rows.values()),
            "rows_deleted_by_table": dict(result.rows),
            "partitions_dropped": sum(result.partitions.values()),
            "partitions_dropped_by_folder": dict(result.partitions),
        }
    )


@dg.op(out=dg.Out(dg.Nothing))
def analyze_warehouse(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    """Refresh the planner's statistics: without them SQLite scans the reporting index over every day of history
    instead of seeking each agent's day (docs/reporting.md, "Performance and indexes")."""
    with locked_warehouse(warehouse, "analyze") as store, store.begin() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql(f"PRAGMA analysis_limit = {SQLITE_ANALYSIS_LIMIT}")
        conn.execute(sa.text("ANALYZE"))
    context.log.info(f"statistics refreshed ({store.dialect})")
    context.add_output_metadata({"dialect": store.dialect})
