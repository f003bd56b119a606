"""Fixtures of the Dagster-level tests."""

from __future__ import annotations

import pytest

from pipelines.liveperson.config import CONNECTION_VARIABLES


@pytest.fixture
def embedded_env(monkeypatch, tmp_path):
    """The embedded defaults (simulator + SQLite + local Parquet), in a temporary folder, at a busy hour."""
    for name in CONNECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = {
        "WAREHOUSE_URL": f"sqlite:///{tmp_path}/warehouse.db",
        "PARQUET_ROOT": str(tmp_path / "parquet"),
        "LP_STATE_DIR": str(tmp_path / "state"),
        "LP_SIMULATOR_START": "2026-11-26T10:00:00+00:00",
        "LP_SIMULATOR_LOGINS": "6",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
