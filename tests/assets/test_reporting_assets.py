"""Daily reporting assets: a partition writes its Parquet files and the dashboard, and checks its own figures."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from pipelines.definitions import build_definitions
from pipelines.reporting import daily as daily_report

DAY = "2026-11-26"


def test_a_day_of_snapshots_becomes_report_partitions_a_dashboard_and_passing_checks(embedded_env, monkeypatch):
    defs = build_definitions()
    start = datetime.fromisoformat("2026-11-26T10:00:00+00:00")
    with dg.instance_for_test() as instance:
        for minute in range(3):  # three snapshots a minute apart
            monkeypatch.setenv("LP_SIMULATOR_START", (start + timedelta(minutes=minute)).isoformat())
            assert build_definitions().resolve_job_def("snapshot_job").execute_in_process(instance=instance).success
        result = defs.resolve_job_def("reporting_job").execute_in_process(instance=instance, partition_key=DAY)
    assert result.success
    url = embedded_env["WAREHOUSE_URL"]  # the runs kept the persisted intervals: exactly the view's rows
    assert daily_report.intervals(url).num_rows > 0
    assert daily_report.intervals(url).equals(daily_report.intervals(url, from_snapshots=True))
    root = Path(embedded_env["PARQUET_ROOT"])
    for view in (
        "agent_time_in_state_daily",
        "agent_utilization_daily",
        "agent_time_in_state_hourly",
        "agent_utilization_hourly",
        "agent_state_interval",  # the day's persisted intervals, which daily.py over this root reads
    ):
        assert pq.read_metadata(root / view / f"date={DAY}" / "part.parquet").num_rows > 0, view
    daily = pq.read_table(root / "agent_time_in_state_daily" / f"date={DAY}" / "part.parquet")
    seconds = daily.column("seconds").to_pylist()
    assert len(set(daily.column("agent_id").to_pylist())) == 50 and max(seconds) <= 86_400
    assert max(seconds) > 180, "a state that began before the first snapshot starts where elapsedTimeInState says"
    checks = result.get_asset_check_evaluations()
    assert {c.asset_check_key.name for c in checks} == {
        "state_plus_unobserved_seconds_add_up_to_the_day",
        "intervals_not_negative_nor_overlapping",
    }
    assert all(c.passed for c in checks)
    dashboard = root.parent / "dashboard" / f"agent_activity_{DAY}.html"
    assert "vegaEmbed" in dashboard.read_text()
