"""Daily reporting: time in state and utilization per UTC day as Parquet partitions, and the HTML dashboard.

Daily-partitioned so that a backfill over past days works from the UI or with
``dagster asset materialize --partition YYYY-MM-DD``. Each asset checks its own day as it writes it.
"""

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.reporting import daily
from pipelines.reporting.dashboard import write_dashboard
from pipelines.reporting.views import create_views
from pipelines.resources import ParquetResource, WarehouseResource

DAY_SECONDS = 86_400.0
TOLERANCE_S = 1e-3

reporting_partitions = dg.DailyPartitionsDefinition(
    start_date=os.environ.get("REPORTING_START_DATE", "2026-01-01"), timezone="UTC", end_offset=1
)


def partition_day(context: dg.AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def report_metadata(view: str, table: pa.Table, path: str) -> dict:
    schema = daily.SCHEMAS[view]
    return {
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=field.name, type=str(field.type)) for field in schema]
        ),
        "parquet_file": dg.MetadataValue.path(path),
    }


def intervals_are_sound(intervals: pa.Table) -> dg.AssetCheckResult:
    """No interval of negative length, and none of an agent overlapping the next one."""
    rows = intervals.sort_by([("agent_id", "ascending"), ("started_at_us", "ascending")]).to_pydict()
    negative = sum(1 for seconds in rows["seconds"] if seconds < 0)
    overlapping = sum(
        1
        for i in range(1, len(rows["agent_id"]))
        if rows["agent_id"][i] == rows["agent_id"][i - 1] and rows["started_at_us"][i] < rows["ended_at_us"][i - 1]
    )
    return dg.AssetCheckResult(
        check_name="intervals_not_negative_nor_overlapping",
        passed=negative == 0 and overlapping == 0,
        metadata={"intervals": len(rows["agent_id"]), "negative": negative, "overlapping": overlapping},
    )


def seconds_add_up(time_in_state: pa.Table, intervals: pa.Table, day: date) -> dg.AssetCheckResult:
    """Per agent-day, state seconds plus unobserved seconds equal the part of the day the intervals cover."""
    totals = time_in_state.group_by("agent_id").aggregate([("seconds", "sum")])
    start_us = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000
    end_us = start_us + int(DAY_SECONDS * 1_000_000)
    clipped_start = pc.max_element_wise(intervals["started_at_us"], start_us)
    clipped_end = pc.min_element_wise(intervals["ended_at_us"], end_us)
    covered = (
        pa.table(
            {
                "agent_id": intervals["agent_id"],
                "covered_us": pc.max_element_wise(pc.subtract(clipped_end, clipped_start), 0),
            }
        )
        .group_by("agent_id")
        .aggregate([("covered_us", "sum")])
    )
    covered_s = {
        a: us / 1e6
        for a, us in zip(covered["agent_id"].to_pylist(), covered["covered_us_sum"].to_pylist(), strict=True)
    }
    mismatched = [
        agent
        for agent, seconds in zip(totals["agent_id"].to_pylist(), totals["seconds_sum"].to_pylist(), strict=True)
        if abs(seconds - covered_s.get(agent, 0.0)) > TOLERANCE_S or seconds > DAY_SECONDS + TOLERANCE_S
    ]
    return dg.AssetCheckResult(
        check_name="state_plus_unobserved_seconds_add_up_to_the_day",
        passed=not mismatched,
        metadata={"agent_days": totals.num_rows, "mismatched": len(mismatched), "examples": mismatched[:5]},
    )


@dg.asset(
    partitions_def=reporting_partitions,
    deps=["agent_state_snapshot", "snapshot_run"],
    group_name="reporting",
    check_specs=[
        dg.AssetCheckSpec("state_plus_unobserved_seconds_add_up_to_the_day", asset="agent_time_in_state_daily"),
        dg.AssetCheckSpec("intervals_not_negative_nor_overlapping", asset="agent_time_in_state_daily"),
    ],
)
def agent_time_in_state_daily(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, parquet: ParquetResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Seconds per agent and chat state in one UTC day (intervals split at midnight; unobserved time apart)."""
    day = partition_day(context)
    create_views(warehouse.url)  # the SQL views too, so that analysts find them in the warehouse
    result, table = write_report("agent_time_in_state_daily", daily.daily_time_in_state, context, warehouse, parquet)
    intervals = daily.intervals(warehouse.url, day)
    # the day's intervals beside the report: daily.py over the Parquet root reads them instead of the snapshots
    path = parquet.open().write_partition(
        daily.INTERVAL_PARTITION, day, intervals, daily.SCHEMAS["agent_state_interval"]
    )
    yield dg.MaterializeResult(metadata={
        **(result.metadata or {}), "intervals_file": dg.MetadataValue.path(path), "intervals": intervals.num_rows,
    })
    yield seconds_add_up(table, intervals, day)
    yield intervals_are_sound(intervals)


def write_report(
    view: str, compute, context: dg.AssetExecutionContext, warehouse: WarehouseResource, parquet: ParquetResource
) -> tuple[dg.MaterializeResult, pa.Table]:
    """Compute one day of ``view`` and write it to ``PARQUET_ROOT/<view>/date=YYYY-MM-DD/part.parquet``."""
    day = partition_day(context)
    table = compute(warehouse.url, day)
    path = parquet.open().write_partition(view, day, table, daily.SCHEMAS[view])
    return dg.MaterializeResult(metadata=report_metadata(view, table, path)), table


@dg.asset(partitions_def=reporting_partitions, deps=["agent_state_snapshot", "chat_session"], group_name="reporting")
def agent_utilization_daily(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, parquet: ParquetResource
) -> dg.MaterializeResult:
    """Active chats over max chats while Online or Occupied, per agent and UTC day."""
    return write_report("agent_utilization_daily", daily.daily_utilization, context, warehouse, parquet)[0]


@dg.asset(partitions_def=reporting_partitions, deps=["agent_state_snapshot"], group_name="reporting")
def agent_time_in_state_hourly(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, parquet: ParquetResource
) -> dg.MaterializeResult:
    """The daily figures split by UTC hour, for the dashboard's heatmaps."""
    return write_report("agent_time_in_state_hourly", daily.hourly_time_in_state, context, warehouse, parquet)[0]


@dg.asset(partitions_def=reporting_partitions, deps=["agent_state_snapshot", "chat_session"], group_name="reporting")
def agent_utilization_hourly(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, parquet: ParquetResource
) -> dg.MaterializeResult:
    """Utilization per agent and UTC hour."""
    return write_report("agent_utilization_hourly", daily.hourly_utilization, context, warehouse, parquet)[0]


def dashboard_dir(parquet_root: str) -> Path:
    """Next to a local Parquet root (``data/parquet`` -> ``data/dashboard``); ``data/dashboard`` otherwise."""
    if "://" in parquet_root:
        return Path("data/dashboard").resolve()
    return Path(parquet_root).resolve().parent / "dashboard"


@dg.asset(
    partitions_def=reporting_partitions,
    deps=["agent_time_in_state_daily", "agent_utilization_daily", "chat_slots_snapshot"],
    group_name="reporting",
)
def agent_activity_dashboard(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, parquet: ParquetResource
) -> dg.MaterializeResult:
    """A self-contained HTML report of the day (offline Vega-Lite): time in state, utilization, slots, coverage."""
    day = partition_day(context)
    folder = dashboard_dir(parquet.root)
    out = write_dashboard(warehouse.url, folder / f"agent_activity_{day.isoformat()}.html", day)
    latest = folder / "agent_activity_latest.html"
    if day >= datetime.now(UTC).date() - timedelta(days=1):  # a backfill of old days keeps the latest
        latest.write_bytes(out.read_bytes())
    return dg.MaterializeResult(
        metadata={"dashboard": dg.MetadataValue.url(out.as_uri()), "path": dg.MetadataValue.path(str(out))}
    )


REPORTING_ASSETS = [
    agent_time_in_state_daily,
    agent_utilization_daily,
    agent_time_in_state_hourly,
    agent_utilization_hourly,
    agent_activity_dashboard,
]
