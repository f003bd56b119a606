"""A simulated week of unattended operation on the simulator's clock: snapshot runs every day, then each night
the maintenance steps (retention, compaction) and the dead-letter replay after a day with a parser bug.

Reduced size for CI: a few runs a day and a week in about a minute. The contract's invariants are asserted every
night (replay_job at 00:20, maintenance_job at 00:30): SQL and Parquet hold the same rows, nothing is duplicated,
closed days are one file per table, and nothing older than ``RETENTION_DAYS`` is left anywhere.
"""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import sqlalchemy as sa

from pipelines.ingest import run_snapshot
from pipelines.liveperson import client as client_module
from pipelines.liveperson.connect import connect
from pipelines.liveperson.errors import PayloadError
from pipelines.maintenance.replay import replay_dead_letters
from pipelines.storage import schema
from pipelines.storage.compaction import compact_closed_days, is_compacted_file
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.retention import apply_retention
from pipelines.storage.warehouse import Warehouse

DAYS = 7
RUNS_PER_DAY = 3
RETENTION_DAYS = 3


def parquet_counts(store: ParquetStore, table: str) -> tuple[int, int]:
    """(rows, distinct keys) of ``table`` read the contract's way."""
    keys = ", ".join(schema.KEYS[table])
    return duckdb.sql(
        f"select count(*), count(distinct ({keys})) from read_parquet('{store.root}/{table}/*/*.parquet', "
        "hive_partitioning=true, union_by_name=true)"
    ).fetchall()[0]


def sql_count(warehouse: Warehouse, table: str) -> int:
    with warehouse.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(schema.TABLES[table])).scalar_one()


def days_on_disk(store: ParquetStore, table: str) -> list[date]:
    folder = Path(store.root) / table
    return sorted(date.fromisoformat(p.name.removeprefix("date=")) for p in folder.glob("date=*"))


def rejecting_slots(payload: Any, *, endpoint: str = "chat/availableSlots") -> int:
    """The day's parser bug: every availableSlots answer refused (fixed, i.e. unpatched, by night)."""
    raise PayloadError("slots refused by a bug", endpoint=endpoint, status=200, body=orjson.dumps(payload))


def test_a_week_of_nightly_maintenance_keeps_sql_and_parquet_equal_bounded_and_compacted(
    simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    store = ParquetStore(str(tmp_path / "parquet"))
    env = {"LP_STATE_DIR": str(tmp_path / "state"), "LP_SIMULATOR_LOGINS": "3"}
    first = simulator.clock.now().astimezone(UTC).date()
    clock = simulator.clock.now
    with connect(env, simulator=simulator) as conn:
        for offset in range(DAYS):
            day = first + timedelta(days=offset)
            with monkeypatch.context() as patch:
                if offset == 2:  # a day with a parser bug: its dead letters are replayed once it is fixed
                    patch.setattr(client_module, "parse_available_slots", rejecting_slots)
                for run in range(RUNS_PER_DAY):
                    simulator.clock.set(at=datetime(day.year, day.month, day.day, 10, run, tzinfo=UTC), paused=True)
                    assert run_snapshot(conn, warehouse, store) is not None

            simulator.clock.set(at=datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
                                + timedelta(minutes=20), paused=True)  # fmt: skip
            replay = replay_dead_letters(warehouse, store, store_chat_text=False, clock=clock)  # replay_job, 00:20
            retention = apply_retention(warehouse, store, days=RETENTION_DAYS, clock=clock)  # maintenance_job, 00:30
            results = compact_closed_days(store, warehouse, clock=clock, retired_grace_s=0)

            assert not [r for r in results if r.status in ("mismatch", "failed")], results
            assert replay.replayed == (RUNS_PER_DAY if offset == 2 else 0)
            assert replay.failing == 0
            oldest_kept = retention.cutoff.date()
            for table in schema.FACT_TABLES:
                rows, distinct = parquet_counts(store, table)
                assert rows == distinct == sql_count(warehouse, table), (day, table)
                kept_days = days_on_disk(store, table)
                assert kept_days and kept_days[0] >= oldest_kept, (day, table, kept_days)
                for closed in kept_days:
                    files = list((Path(store.root) / table / f"date={closed.isoformat()}").glob("*.parquet"))
                    assert len(files) == 1 and is_compacted_file(files[0].name), (day, table, closed)

    with warehouse.engine.connect() as db:
        oldest_run = db.execute(sa.select(sa.func.min(schema.TABLES["snapshot_run"].c.started_at))).scalar_one()
        letters = db.execute(sa.select(sa.func.count()).select_from(schema.TABLES["ingest_error"])).scalar_one()
    last_night = first + timedelta(days=DAYS)
    assert oldest_run.date() == last_night - timedelta(days=RETENTION_DAYS)
    assert letters == 0, "the buggy day's dead letters aged out with the rest of that day"
    assert sql_count(warehouse, "snapshot_run") == RETENTION_DAYS * RUNS_PER_DAY
    warehouse.dispose()
