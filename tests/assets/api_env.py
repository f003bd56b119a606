"""Point the Dagster definitions at a running simulator as if it were a real account (``LP_BASE_URL`` and logins).

Unlike the embedded mode, the test keeps the simulator: it can switch faults on and refuse logins between runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from pipelines.definitions import build_definitions

if TYPE_CHECKING:
    from pipelines.liveperson.simulator import Simulator


def point_at_simulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: Simulator, logins: list[tuple[str, str]]
) -> dict[str, str]:
    """Set the environment (fast retries, a temporary warehouse, Parquet root and state folder); returns it."""
    for name in ("LP_DOMAIN", "LP_USERNAME", "LP_PASSWORD", "LP_BEARER_TOKEN", "SNAPSHOT_CRON"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "LP_BASE_URL": simulator.base_url,
        "LP_ACCOUNT_ID": simulator.account_id,
        "LP_AGENT_LOGINS": json.dumps([{"username": u, "password": p} for u, p in logins]),
        "LP_STATE_DIR": str(tmp_path / "state"),
        "LP_RETRY_BASE_S": "0",
        "WAREHOUSE_URL": f"sqlite:///{tmp_path}/warehouse.db",
        "PARQUET_ROOT": str(tmp_path / "parquet"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def run_snapshot_job(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """One ``snapshot_job`` run with definitions built from the current environment, as the code server builds them."""
    return (
        build_definitions().resolve_job_def("snapshot_job").execute_in_process(instance=instance, raise_on_error=False)
    )
