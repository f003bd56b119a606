"""A pipeline PROCESS for crash and concurrency trials: ``python -m tests.reliability.driver '<json>'``.

It talks HTTP to a simulator that the test runs in its own process (``LP_BASE_URL``, ``LP_ACCOUNT_ID``,
``LP_AGENT_LOGINS``, as a deployment would), and stamps rows with the simulator's clock, rebuilt from the parent's
``SimClock.state()`` (a configured connection would otherwise use the system clock). The JSON argument holds:
``base_url``, ``account_id``, ``logins`` ([[user, password], ...]), ``clock`` (a clock state), ``warehouse`` (URL),
``parquet`` (root), ``state_dir``, optional ``lock_wait_s`` and ``runs`` (how many runs in a row, default 1).

It prints one JSON line per milestone on stdout: ``{"event": "ready"}`` once connected and about to run, then
``{"event": "done", ...}`` with the run's summary (``status`` null when it skipped because of the writer lock).
Tests fork ``run`` instead (``multiprocessing`` with the fork method: no interpreter start-up per trial), with
``emit`` sending the same messages through a pipe.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from pipelines.ingest import run_snapshot
from pipelines.liveperson.client import AgentApiClient
from pipelines.liveperson.config import settings_from_env
from pipelines.liveperson.connect import Connection
from pipelines.liveperson.simulator.clock import SimClock
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse


def environment(spec: dict[str, Any]) -> dict[str, str]:
    return {
        "LP_BASE_URL": spec["base_url"],
        "LP_ACCOUNT_ID": spec["account_id"],
        "LP_AGENT_LOGINS": json.dumps([{"username": u, "password": p} for u, p in spec["logins"]]),
        "LP_STATE_DIR": spec["state_dir"],
        "LP_RETRY_BASE_S": "0.01",
        "LP_TIMEOUT_S": "20",
    }


def emit_json(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def run(spec: dict[str, Any], emit: Callable[..., None] = emit_json) -> None:
    """Connect, say ``ready``, run ``spec["runs"]`` snapshots and say ``done`` after each."""
    import pandas  # noqa: F401  - imported lazily by the first Arrow conversion: warm it up before "ready"

    settings = settings_from_env(environment(spec))
    assert settings is not None
    clock = SimClock.from_state(spec["clock"])
    warehouse = Warehouse(spec["warehouse"])
    parquet = ParquetStore(spec["parquet"])
    with Connection(settings, clock=clock) as connection:
        connection.client = AgentApiClient(settings, clock, chat_sessions_interval_s=0.0)
        emit(event="ready")
        for _ in range(int(spec.get("runs", 1))):
            started = time.monotonic()
            summary = run_snapshot(connection, warehouse, parquet, lock_wait_s=float(spec.get("lock_wait_s", 10.0)))
            emit(
                event="done",
                seconds=time.monotonic() - started,
                status=summary.status if summary else None,
                snapshot_id=summary.snapshot_id if summary else None,
                events=summary.events if summary else 0,
            )
    warehouse.dispose()


def main(argv: list[str]) -> int:
    run(json.loads(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
