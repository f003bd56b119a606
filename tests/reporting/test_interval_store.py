"""The persisted intervals (``agent_state_interval_store`` + ``agent_state_open``) hold exactly the rows of the view
``agent_state_interval`` over the same snapshots, however the runs arrive, and the day reports read them."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.clock import Clock
from pipelines.ingest import SnapshotRunner
from pipelines.reporting import daily, interval_store
from pipelines.storage import migrations, schema
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.retention import delete_old_rows
from pipelines.storage.warehouse import Warehouse
from tests.reporting.conftest import AWAY, DAY, OCCUPIED, OFFLINE, ONLINE, T0, Snapshots, generated_world

NEXT_DAY = DAY + timedelta(days=1)


def land_run_by_run(url: str, world: Snapshots, order: list[int] | None = None) -> Warehouse:
    """Store ``world`` as live runs would: each run's row, its snapshots and the store's advance in one
    transaction (in ``order`` of the runs sorted by time, default that order); the dimensions first."""
    warehouse = Warehouse(url)
    warehouse.migrate()
    tables = world.arrow()
    runs = tables["snapshot_run"].sort_by("started_at")
    snapshots = tables.get("agent_state_snapshot")
    with warehouse.begin() as conn:
        for name in ("agent", "chat_session", "chat_slots_snapshot"):
            if name in tables:
                warehouse.upsert(conn, name, tables[name], update=False)
    for index in order if order is not None else range(runs.num_rows):
        run = runs.slice(index, 1)
        snapshot_id = run["snapshot_id"][0].as_py()
        with warehouse.begin() as conn:
            warehouse.upsert(conn, "snapshot_run", run)
            if snapshots is not None:
                rows = snapshots.filter(pc.equal(snapshots["snapshot_id"], snapshot_id))
                if rows.num_rows:
                    warehouse.upsert(conn, "agent_state_snapshot", rows)
            if run["status"][0].as_py() != "failed":
                interval_store.apply_run(conn, snapshot_id)
    return warehouse


def assert_store_equals_view(url: str) -> None:
    stored, reference = daily.intervals(url), daily.intervals(url, from_snapshots=True)
    assert stored.num_rows == reference.num_rows
    assert stored.equals(reference), _first_difference(stored, reference)


def _first_difference(a: pa.Table, b: pa.Table) -> str:
    for i, (x, y) in enumerate(zip(a.to_pylist(), b.to_pylist(), strict=False)):
        if x != y:
            return f"row {i}: store {x} != view {y}"
    return "lengths differ"


def store_counts(url: str) -> tuple[int, int]:
    warehouse = Warehouse(url)
    try:
        with warehouse.begin() as conn:
            return tuple(
                conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()  # type: ignore
                for table in (schema.agent_state_interval_store, schema.agent_state_open)
            )
    finally:
        warehouse.dispose()


# ------------------------------------------------------------------ store == view


def test_the_store_equals_the_view_over_a_generated_two_day_world(warehouse_url):
    """Untracked Offline, jitter, flaps, an outage across midnight and mid-day, a failed run: run after run."""
    land_run_by_run(warehouse_url, generated_world(agents=40, days=2)).dispose()
    assert_store_equals_view(warehouse_url)
    for day in (DAY, NEXT_DAY):
        assert daily.daily_time_in_state(warehouse_url, day).equals(
            daily.daily_time_in_state(warehouse_url, day, from_snapshots=True)
        )
        assert daily.hourly_time_in_state(warehouse_url, day).equals(
            daily.hourly_time_in_state(warehouse_url, day, from_snapshots=True)
        )
        assert daily.intervals(warehouse_url, day).equals(daily.intervals(warehouse_url, day, from_snapshots=True))


def test_the_store_equals_the_view_over_benchmark_like_minute_snapshots(tmp_path):
    """The benchmark's generator (bench/reporting.py): a random walk per agent in an 8-hour shift, Offline
    untracked, one snapshot a minute."""
    bench = pytest.importorskip("bench.reporting")
    at_us, states, starts = bench.generate(agents=30, minutes=600)
    snaps, runs = bench.snapshot_rows(at_us, states, starts), bench.run_rows(at_us)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    warehouse = Warehouse(url)
    warehouse.migrate()
    for index in range(runs.num_rows):
        run = runs.slice(index, 1)
        with warehouse.begin() as conn:
            warehouse.upsert(conn, "snapshot_run", run)
            warehouse.upsert(conn, "agent_state_snapshot", snaps.slice(index * 30, 30))
            assert interval_store.apply_run(conn, run["snapshot_id"][0].as_py()).agents_rebuilt in (0, 30)
    warehouse.dispose()
    assert_store_equals_view(url)
    assert daily.daily_time_in_state(url, bench.DAY).equals(
        daily.daily_time_in_state(url, bench.DAY, from_snapshots=True)
    )


@st.composite
def snapshot_sequences(draw) -> tuple[Snapshots, list[int]]:
    """Up to three agents over up to 14 runs: states 1-4 and an unknown one, elapsed 0 (untracked), None, consistent
    with the previous start up to a few seconds of jitter, random, or negative (a start after the snapshot); runs
    15 s to 7 min apart with interval_s 30/60/120 (gaps), failed runs, agents missing from runs. Also an order
    in which the runs arrive."""
    world = Snapshots()
    agents = [f"a{n}" for n in range(draw(st.integers(1, 3)))]
    since: dict[str, tuple[int, float]] = {}
    at = 0.0
    for _ in range(draw(st.integers(1, 14))):
        at += draw(st.sampled_from([15, 59.5, 60, 61, 119, 121, 200, 420])) + draw(st.integers(0, 999)) / 1000
        world.interval_s = draw(st.sampled_from([60, 60, 30, 120]))
        status = draw(st.sampled_from(["ok", "ok", "ok", "partial", "failed"]))
        world.run(T0 + timedelta(seconds=at), status)  # a run, even if no agent is in it
        for agent in agents:
            if draw(st.integers(0, 9)) == 0:
                continue  # this agent is missing from the run
            kind = draw(st.sampled_from(["same", "same", "new", "untracked", "none", "negative"]))
            state, start = since.get(agent, (ONLINE, at - 30))
            if kind == "new" or agent not in since:
                state = draw(st.sampled_from([OFFLINE, ONLINE, OCCUPIED, AWAY, 5]))
                start = at - draw(st.sampled_from([0, 1, 30, 90, 400]))
            elapsed: float | None = max(at - start, 0) + draw(st.sampled_from([0, 0, -1.5, 1.5, 2.5, -3]))
            if kind == "untracked" or (state == OFFLINE and draw(st.booleans())):
                elapsed = 0
            elif kind == "none":
                elapsed = None
            elif kind == "negative":
                elapsed = -draw(st.sampled_from([1, 5]))
            since[agent] = (state, start)
            world.add(at, agent, state, elapsed, status=status, group=draw(st.sampled_from(["g1", "g2"])))
    runs = len(world.tables["snapshot_run"])
    order = draw(st.permutations(range(runs)))
    return world, list(order)


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "warehouse.db"
    warehouse = Warehouse(f"sqlite:///{path}")
    warehouse.migrate()
    warehouse.dispose()
    return path


def _copy(template: Path) -> str:
    folder = Path(shutil.copy(template, template.parent / f"w{random.getrandbits(48):x}.db"))
    return f"sqlite:///{folder}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshot_sequences())
def test_the_store_equals_the_view_for_random_snapshot_sequences_arriving_in_order(migrated_template, drawn):
    world, _ = drawn
    url = _copy(migrated_template)
    land_run_by_run(url, world).dispose()
    assert_store_equals_view(url)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshot_sequences())
def test_the_store_equals_the_view_whatever_order_the_runs_arrive_in(migrated_template, drawn):
    """A replayed or late run older than an agent's open interval rebuilds that agent from its snapshots."""
    world, order = drawn
    url = _copy(migrated_template)
    land_run_by_run(url, world, order).dispose()
    assert_store_equals_view(url)


# ------------------------------------------------------------------ the rules, one by one


def test_a_late_run_rebuilds_only_the_agents_it_lands_behind(tmp_path):
    world = Snapshots()
    for minute in range(5):
        world.add(60 * minute, "a1", ONLINE, 60 * minute + 10)
    world.add(120.5, "a2", AWAY, 5)  # a run of its own, between a1's runs 2 and 3
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    order = [0, 1, 2, 4, 5, 3]  # the runs sorted by time: a2's run (index 3) arrives last, after a1's later runs
    land_run_by_run(url, world, order).dispose()
    assert_store_equals_view(url)
    late = Snapshots().add(90, "a1", AWAY, 5)  # between a1's snapshots at 60 and 120: a1 is rebuilt
    warehouse = Warehouse(url)
    with warehouse.begin() as conn:
        tables = late.arrow()
        warehouse.upsert(conn, "snapshot_run", tables["snapshot_run"])
        warehouse.upsert(conn, "agent_state_snapshot", tables["agent_state_snapshot"])
        advance = interval_store.apply_run(conn, tables["snapshot_run"]["snapshot_id"][0].as_py())
    warehouse.dispose()
    assert (advance.agents_rebuilt, advance.agents_advanced) == (1, 0)
    assert_store_equals_view(url)
    states = [row["chat_state"] for row in daily.intervals(url).to_pylist() if row["agent_id"] == "a1"]
    assert states == ["Online", "Away", "Online"]


def test_a_late_snapshot_refolds_its_agent_from_the_previous_snapshot_not_from_its_whole_history(
    tmp_path, monkeypatch
):
    world = Snapshots()
    for minute in range(30):  # a flap at minute 10, a gap from 20 to 25, a state change at 27
        state = AWAY if minute >= 27 else ONLINE
        if 20 < minute < 25:
            continue
        elapsed = 60 * (minute - 27) + 5 if state == AWAY else 60 * minute + 10 - (590 if minute >= 10 else 0)
        world.add(60 * minute, "a1", state, elapsed)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    land_run_by_run(url, world).dispose()

    def whole_history(*args, **kwargs):
        raise AssertionError("rebuilt from the whole history")

    monkeypatch.setattr(interval_store, "rebuild", whole_history)
    warehouse = Warehouse(url)
    for at_s in (60 * 22, 60 * 9 + 30, 60 * 27 - 20):  # into the gap, before the flap, just before the change
        late = Snapshots().add(at_s, "a1", OCCUPIED, 15).arrow()
        with warehouse.begin() as conn:
            warehouse.upsert(conn, "snapshot_run", late["snapshot_run"])
            warehouse.upsert(conn, "agent_state_snapshot", late["agent_state_snapshot"])
            assert interval_store.apply_run(conn, late["snapshot_run"]["snapshot_id"][0].as_py()).agents_rebuilt == 1
        assert_store_equals_view(url)
    warehouse.dispose()


def test_the_snapshots_of_a_failed_run_never_enter_the_store(tmp_path):
    world = Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", AWAY, 5, status="failed").add(120, "a1", ONLINE, 130)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    land_run_by_run(url, world).dispose()
    assert_store_equals_view(url)
    assert [row["chat_state"] for row in daily.intervals(url).to_pylist()] == ["Online"]
    warehouse = Warehouse(url)
    with warehouse.begin() as conn:  # even when asked to: the failed run's snapshots are not visible
        failed = world.tables["snapshot_run"][1]["snapshot_id"]
        assert interval_store.apply_run(conn, failed).agents_advanced == 0
    warehouse.dispose()
    assert_store_equals_view(url)


def test_the_open_interval_ends_at_the_agents_last_snapshot_and_lives_in_the_open_state(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    land_run_by_run(url, Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", ONLINE, 70)).dispose()
    assert store_counts(url) == (0, 1)  # nothing closed yet: one open row
    (row,) = daily.intervals(url).to_pylist()
    assert (row["started_at"], row["ended_at"], row["seconds"]) == (
        T0 - timedelta(seconds=10),
        T0 + timedelta(seconds=60),
        70.0,
    )


def test_a_warehouse_with_snapshots_but_no_store_is_read_from_snapshots_until_the_next_run_builds_it(tmp_path):
    """An upgraded warehouse: its snapshots predate the store. Readers fall back; the first run builds it all."""
    from tests.reporting.conftest import store

    world = generated_world(agents=12, days=1)
    url = store(world.arrow(), "sqlite", tmp_path)
    assert store_counts(url) == (0, 0)
    assert daily.intervals(url).equals(daily.intervals(url, from_snapshots=True))  # the fallback
    warehouse = Warehouse(url)
    engine_url = url
    with warehouse.begin() as conn:
        assert not interval_store.is_built(conn)
        late = (
            Snapshots()
            .add(datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(days=1, hours=2), "1000", ONLINE, 30)
            .arrow()
        )
        warehouse.upsert(conn, "snapshot_run", late["snapshot_run"])
        warehouse.upsert(conn, "agent_state_snapshot", late["agent_state_snapshot"])
        advance = interval_store.apply_run(conn, late["snapshot_run"]["snapshot_id"][0].as_py())
        assert advance.built and interval_store.is_built(conn)
    warehouse.dispose()
    assert store_counts(engine_url)[1] == 12
    assert_store_equals_view(url)


def test_a_warehouse_migrated_from_before_the_store_reads_snapshots_until_the_first_run_builds_it(tmp_path):
    """Upgrade path: snapshots stored under migrations 0001-0003, then 0004 applied with them in place."""
    older = tmp_path / "migrations-0003"
    older.mkdir()
    for migration in migrations.discover():
        if migration.version < 4:
            shutil.copy(migration.path, older / migration.path.name)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    warehouse = Warehouse(url)
    migrations.migrate(warehouse.engine, older)
    tables = generated_world(agents=10, days=1).arrow()
    with warehouse.begin() as conn:
        for name in ("snapshot_run", "agent_state_snapshot"):
            warehouse.upsert(conn, name, tables[name], update=False)
        assert not interval_store.is_built(conn)  # no table yet: the day functions read the snapshots
    reference = daily.intervals(url, from_snapshots=True)
    assert daily.intervals(url).equals(reference)

    assert warehouse.migrate() == [4]
    assert daily.intervals(url).equals(reference)  # migrated, not built yet: still from the snapshots
    next_run = Snapshots().add(datetime(DAY.year, DAY.month, DAY.day, 23, 59, tzinfo=UTC), "1000", OFFLINE, 0)
    land = next_run.arrow()
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "snapshot_run", land["snapshot_run"])
        warehouse.upsert(conn, "agent_state_snapshot", land["agent_state_snapshot"])
        assert interval_store.apply_run(conn, land["snapshot_run"]["snapshot_id"][0].as_py()).built
    warehouse.dispose()
    assert store_counts(url)[1] == 10
    assert_store_equals_view(url)


def test_the_store_can_be_built_ahead_from_the_command_line(tmp_path, capsys, monkeypatch):
    """For a long history: built before the first run after the upgrade, which would otherwise build it. The
    warehouse is the one of WAREHOUSE_URL, like every run's (a PostgreSQL URL holds a password)."""
    from tests.reporting.conftest import store

    url = store(generated_world(agents=8, days=1).arrow(), "sqlite", tmp_path)
    monkeypatch.setenv("WAREHOUSE_URL", url)
    interval_store.main([])
    assert "built the persisted intervals of 8 agents" in capsys.readouterr().out
    assert_store_equals_view(url)


# ------------------------------------------------------------------ SnapshotRunner.finish: one transaction


class _Crash(Exception):
    pass


def _runner(warehouse: Warehouse, tmp_path: Path, snapshot_id: str, at: datetime) -> SnapshotRunner:
    clock: Clock = lambda: at  # noqa: E731
    parquet = ParquetStore(str(tmp_path / "parquet"))
    runner = SnapshotRunner(
        None,
        warehouse,
        parquet,
        clock=clock,
        source="test",
        account_id="1",  # type: ignore[arg-type]
        interval_s=60,
        store_chat_text=False,
        progress=lambda _: None,
    )
    runner.snapshot_id, runner.started_at, runner.snapshot_at, runner.steps_succeeded = snapshot_id, at, at, 1
    return runner


def test_finish_commits_the_run_status_and_its_intervals_together_or_neither(warehouse_url, tmp_path, monkeypatch):
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    world = Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", AWAY, 5)
    tables = world.arrow()
    ids = tables["snapshot_run"]["snapshot_id"].to_pylist()
    for index in range(len(ids)):  # each run as begin() and the agents step store it: still "failed"
        with warehouse.begin() as conn:
            warehouse.upsert(
                conn,
                "snapshot_run",
                tables["snapshot_run"].slice(index, 1).set_column(3, "status", pa.array(["failed"])),
            )
            warehouse.upsert(conn, "agent_state_snapshot", tables["agent_state_snapshot"].slice(index, 1))
    at = T0 + timedelta(seconds=61)
    _runner(warehouse, tmp_path, ids[0], at).finish()

    written = interval_store._write

    def crash_after_writing(*args, **kwargs):
        written(*args, **kwargs)
        raise _Crash  # the process dies once the intervals are written, before the commit

    monkeypatch.setattr(interval_store, "_write", crash_after_writing)
    with pytest.raises(_Crash):
        _runner(warehouse, tmp_path, ids[1], at).finish()
    status = schema.TABLES["snapshot_run"].c.status
    with warehouse.begin() as conn:
        assert conn.execute(sa.select(status).order_by(status)).scalars().all() == ["failed", "ok"]
    assert store_counts(warehouse_url) == (0, 1)  # only the first run's open interval
    assert [row["chat_state"] for row in daily.intervals(warehouse_url).to_pylist()] == ["Online"]

    monkeypatch.setattr(interval_store, "_write", written)
    _runner(warehouse, tmp_path, ids[1], at).finish()  # the run finishes after all: both at once
    assert [row["chat_state"] for row in daily.intervals(warehouse_url).to_pylist()] == ["Online", "Away"]
    assert_store_equals_view(warehouse_url)
    warehouse.dispose()


# ------------------------------------------------------------------ retention


def test_retention_deletes_intervals_ended_by_the_cutoff_and_the_next_day_reports_as_before(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    warehouse = land_run_by_run(url, generated_world(agents=20, days=2))
    before = daily.daily_time_in_state(url, NEXT_DAY)
    cutoff = datetime(NEXT_DAY.year, NEXT_DAY.month, NEXT_DAY.day, tzinfo=UTC)
    cutoff_us = (cutoff - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

    counts = delete_old_rows(warehouse, cutoff)

    assert counts["agent_state_interval_store"] > 0
    rows = daily.intervals(url).to_pylist()
    assert rows and min(row["ended_at_us"] for row in rows) > cutoff_us
    assert any(row["started_at_us"] < cutoff_us for row in rows), "an interval spanning the cutoff stays whole"
    assert daily.daily_time_in_state(url, NEXT_DAY).equals(before)
    assert daily.daily_time_in_state(url, DAY).num_rows <= 20  # per agent, only the interval spanning the cutoff
    warehouse.dispose()


def test_retention_forgets_agents_last_seen_before_the_cutoff(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    warehouse = land_run_by_run(url, Snapshots().add(0, "gone", ONLINE, 10).add(7200, "stays", AWAY, 5))
    delete_old_rows(warehouse, T0 + timedelta(hours=1))
    assert {row["agent_id"] for row in daily.intervals(url).to_pylist()} == {"stays"}
    warehouse.dispose()


# ------------------------------------------------------------------ Parquet


def test_a_parquet_root_reads_the_days_interval_partition_when_written(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    land_run_by_run(url, generated_world(agents=20, days=2)).dispose()
    root = tmp_path / "parquet"
    assert daily.interval_partition(root, DAY) is None
    intervals = daily.intervals(url, DAY)
    schema_ = daily.SCHEMAS["agent_state_interval"]
    ParquetStore(str(root)).write_partition(daily.INTERVAL_PARTITION, DAY, intervals, schema_)
    assert daily.interval_partition(root, DAY) is not None
    # no snapshot is under this root: the day comes from the interval partition alone
    assert daily.daily_time_in_state(root, DAY).equals(daily.daily_time_in_state(url, DAY))
    assert daily.hourly_time_in_state(root, DAY).equals(daily.hourly_time_in_state(url, DAY))
    assert daily.intervals(root, DAY).equals(intervals)
    assert pq.read_table(daily.interval_partition(root, DAY)).num_rows == intervals.num_rows
