"""``snapshot_job`` from a shell, as operators run it: ``dagster job execute``, sequential and concurrent runs,
and Dagster's production instance (run, event and schedule storage on PostgreSQL, ``docs/dagster.yaml``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import psycopg
import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def job_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LP_")}
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").touch()
    env.update(
        DAGSTER_HOME=str(dagster_home),
        WAREHOUSE_URL=f"sqlite:///{tmp_path}/warehouse.db",
        PARQUET_ROOT=str(tmp_path / "parquet"),
        LP_STATE_DIR=str(tmp_path / "state"),
        LP_SIMULATOR_START="2026-11-26T10:00:00+00:00",
        LP_SIMULATOR_LOGINS="6",
    )
    env.update(extra)
    return env


def start_job(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DAGSTER, "job", "execute", "-m", "pipelines.definitions", "-j", "snapshot_job"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-4000:]
    return output


def test_job_execute_then_two_at_once_leaves_no_duplicate_and_a_snapshot_per_polling_run(tmp_path):
    env = job_env(tmp_path)
    finish(start_job(env))
    racing = [start_job(env), start_job(env)]
    outputs = [finish(process) for process in racing]

    engine = sa.create_engine(env["WAREHOUSE_URL"])
    with engine.connect() as db:
        runs = db.execute(sa.text("select status from snapshot_run")).scalars().all()
        events = db.execute(sa.text("select count(*) from chat_event")).scalar_one()
    engine.dispose()
    skipped = sum("another run holds the warehouse writer lock" in output for output in outputs)
    assert len(runs) == 3 - skipped >= 2
    assert set(runs) <= {"ok", "partial"}
    pattern = f"{env['PARQUET_ROOT']}/chat_event/*/*.parquet"
    with duckdb.connect() as con:
        total, distinct = con.execute(
            "select count(*), count(distinct (chat_id, event_id)) from read_parquet(?, hive_partitioning=true)",
            [pattern],
        ).fetchone()
    assert total == distinct == events > 0


@pytest.mark.postgres
def test_production_instance_stores_runs_in_postgres(tmp_path, postgres_url):
    env = job_env(tmp_path)
    shutil.copy(ROOT / "docs" / "dagster.yaml", Path(env["DAGSTER_HOME"]) / "dagster.yaml")
    plain_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    # dagster-postgres speaks psycopg2; SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql:// URL.
    env_url = postgres_url.replace("postgresql+psycopg://", "postgresql+psycopg2://")
    env["DAGSTER_PG_URL"] = env_url
    finish(start_job(env))
    with psycopg.connect(plain_url) as db:
        statuses = [row[0] for row in db.execute("select status from runs where pipeline_name = 'snapshot_job'")]
    assert statuses == ["SUCCESS"]
