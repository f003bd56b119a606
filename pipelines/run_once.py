"""README's first command: one run of ``snapshot_job`` on the configured (by default embedded) sources.

Runs the job in-process against a persistent Dagster instance (``DAGSTER_HOME``, default ``data/dagster_home``)
so that ``dagster dev`` later shows the run, then prints where the results are and what they hold.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from assets.reporting import dashboard_dir
from pipelines.resources import DEFAULT_PARQUET_ROOT, DEFAULT_WAREHOUSE_URL
from pipelines.storage import schema
from pipelines.storage.warehouse import Warehouse


def ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path("data/dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # local storage; no telemetry from a demo machine
        config.write_text("telemetry:\n  enabled: false\n")
    return home


# Progress and warnings on the console; Dagster's step-by-step DEBUG events stay in its event log (the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def today_partition() -> str:
    """Today's reporting partition: the snapshots' own clock decides (the embedded simulator's, if pinned)."""
    start = os.environ.get("LP_SIMULATOR_START")
    day = datetime.fromisoformat(start).date() if start else datetime.now(UTC).date()
    return day.isoformat()


def table_counts(url: str) -> dict[str, int]:
    warehouse = Warehouse(url)
    try:
        with warehouse.engine.connect() as conn:
            return {
                name: conn.execute(sa.select(sa.func.count()).select_from(schema.TABLES[name])).scalar_one()
                for name in schema.TABLES
            }
    finally:
        warehouse.dispose()


def main() -> int:
    home = ensure_dagster_home()
    from pipelines.definitions import defs, reporting_job, snapshot_job  # after DAGSTER_HOME is set

    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(snapshot_job.name).execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False
        )
        report = None
        if result.success:  # today's reports and dashboard, from what the warehouse now holds
            report = defs.resolve_job_def(reporting_job.name).execute_in_process(
                instance=instance, partition_key=today_partition(), run_config=QUIET, raise_on_error=False
            )
    url = os.environ.get("WAREHOUSE_URL", DEFAULT_WAREHOUSE_URL)
    root = os.environ.get("PARQUET_ROOT", DEFAULT_PARQUET_ROOT)
    print(f"\nsnapshot_job {'succeeded' if result.success else 'FAILED'} (Dagster run {result.run_id})")
    print(f"warehouse : {url}")
    for name, count in table_counts(url).items():
        print(f"  {name:32s} {count:>9,d} rows")
    print(f"parquet   : {Path(root).resolve() if '://' not in root else root}")
    if report is not None:
        print(f"reports   : {'written' if report.success else 'FAILED'} for {today_partition()} (UTC)")
        print(f"dashboard : {dashboard_dir(root) / f'agent_activity_{today_partition()}.html'}")
    print(f"dagster   : {home}  (browse with: make dev)")
    return 0 if result.success and (report is None or report.success) else 1


if __name__ == "__main__":
    sys.exit(main())
