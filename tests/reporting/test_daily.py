"""One day's time in state, utilization and capacity: midnight splitting, coverage, and the utilization rules."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from pipelines.reporting import daily, views
from tests.reporting.conftest import (
    AWAY,
    DAY,
    OCCUPIED,
    OFFLINE,
    ONLINE,
    T0,
    Snapshots,
    generated_world,
    store,
)

MIDNIGHT = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(days=1)
NEXT_DAY = DAY + timedelta(days=1)


def seconds_by_state(table) -> dict[tuple[str, str | None, bool], float]:
    return {(row["agent_id"], row["chat_state"], row["observed"]): row["seconds"] for row in table.to_pylist()}


def test_an_interval_across_midnight_is_split_at_midnight_utc(load):
    snapshots = Snapshots()
    for minute in range(1, 61):  # Online since 23:30, seen every minute until 00:30
        at = MIDNIGHT - timedelta(minutes=30) + timedelta(minutes=minute)
        snapshots.add(at, "a1", ONLINE, minute * 60)
    source = load(snapshots)
    assert seconds_by_state(daily.daily_time_in_state(source, DAY)) == {("a1", "Online", True): 1800.0}
    assert seconds_by_state(daily.daily_time_in_state(source, NEXT_DAY)) == {("a1", "Online", True): 1800.0}
    assert daily.daily_time_in_state(source, DAY)["day"].to_pylist() == [DAY]


def test_unobserved_seconds_are_rows_with_observed_false_beside_the_states(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", ONLINE, 70).add(400, "a1", AWAY, 30))
    assert seconds_by_state(daily.daily_time_in_state(source, DAY)) == {
        ("a1", "Online", True): 70.0, ("a1", None, False): 310.0, ("a1", "Away", True): 30.0,
    }


def test_share_of_observed_day_ignores_unobserved_time(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", ONLINE, 70).add(400, "a1", AWAY, 30))
    rows = daily.daily_time_in_state(source, DAY).to_pylist()
    shares = {row["chat_state"]: row["share_of_observed_day"] for row in rows}
    assert shares == {"Online": 0.7, "Away": 0.3, None: None}


def test_hours_are_split_at_each_utc_hour(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 600).add(3900, "a1", ONLINE, 4500))  # 07:50 to 09:05
    hours = daily.hourly_time_in_state(source, DAY)
    assert list(zip(hours["hour"].to_pylist(), hours["seconds"].to_pylist(), strict=True)) == [
        (7, 600.0), (8, 3600.0), (9, 300.0)]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> str:
    return store(generated_world().arrow(), "sqlite", tmp_path_factory.mktemp("world"))


@pytest.mark.parametrize("day", [DAY, NEXT_DAY])
def test_state_and_unobserved_seconds_add_up_to_the_covered_day(world, day):
    """Covered: from the agent's first known start (or midnight) to its last snapshot (or the next midnight)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    first, last = {}, {}
    for row in daily.intervals(world).to_pylist():
        first[row["agent_id"]] = min(first.get(row["agent_id"], row["started_at"]), row["started_at"])
        last[row["agent_id"]] = max(last.get(row["agent_id"], row["ended_at"]), row["ended_at"])
    covered = {agent: (min(end, last[agent]) - max(start, first[agent])).total_seconds()
               for agent in first if first[agent] < end and last[agent] > start}
    reported: dict[str, float] = defaultdict(float)
    table = daily.daily_time_in_state(world, day)
    for row in table.to_pylist():
        reported[row["agent_id"]] += row["seconds"]
    assert not pc.all(table["observed"]).as_py()  # the world's outages are in there
    assert reported.keys() == {agent for agent, seconds in covered.items() if seconds > 0}
    for agent, seconds in reported.items():
        assert seconds == pytest.approx(covered[agent], abs=1e-6)


def test_a_day_computed_from_its_own_snapshots_equals_the_view_over_the_whole_history(world):
    views.create_views(world)
    with views.connect(world) as (_, run):
        whole = daily.conform(run(f"SELECT * FROM agent_time_in_state_daily WHERE day = '{NEXT_DAY}'"),
                              daily.SCHEMAS["agent_time_in_state_daily"])
    keys = [(key, "ascending") for key in daily.KEYS["agent_time_in_state_daily"]]
    assert daily.daily_time_in_state(world, NEXT_DAY).equals(whole.sort_by(keys))


def test_hours_add_up_to_their_day(world):
    by_day = {(r["agent_id"], r["chat_state"], r["observed"]): r["duration_us"]
              for r in daily.daily_time_in_state(world, DAY).to_pylist()}
    by_hours: dict[tuple, int] = defaultdict(int)
    for r in daily.hourly_time_in_state(world, DAY).to_pylist():
        by_hours[(r["agent_id"], r["chat_state"], r["observed"])] += r["duration_us"]
    assert by_hours == by_day


def utilization(source, agent_id: str = "a1") -> dict:
    rows = [row for row in daily.daily_utilization(source, DAY).to_pylist() if row["agent_id"] == agent_id]
    return {key: rows[0][key] for key in ("avg_active_chats", "max_chats", "utilization", "chats_handled")}


def test_utilization_counts_only_online_and_occupied_snapshots(load):
    snapshots = Snapshots().add(0, "a1", ONLINE, 5, chats=1, max_chats=4).add(60, "a1", OCCUPIED, 5, chats=3,
                                                                                max_chats=4)
    snapshots.add(120, "a1", AWAY, 5, chats=2, max_chats=4).add(180, "a1", OFFLINE, 0, chats=0, max_chats=4)
    assert utilization(load(snapshots)) == {"avg_active_chats": 2.0, "max_chats": 4, "utilization": 0.5,
                                            "chats_handled": None}


def test_utilization_is_null_where_chats_is_absent(load):
    snapshots = Snapshots().add(0, "a1", ONLINE, 5, chats=None).add(60, "a1", ONLINE, 65, chats=None)
    assert utilization(load(snapshots))["utilization"] is None
    assert utilization(load(snapshots))["avg_active_chats"] is None


def test_snapshots_without_chats_are_left_out_of_the_average(load):
    snapshots = Snapshots().add(0, "a1", ONLINE, 5, chats=None, max_chats=2).add(60, "a1", ONLINE, 65, chats=1,
                                                                                 max_chats=2)
    assert utilization(load(snapshots))["utilization"] == 0.5


@pytest.mark.parametrize("max_chats", [-1, 0])
def test_utilization_is_null_where_max_chats_is_unlimited_or_zero(load, max_chats):
    snapshots = Snapshots().add(0, "a1", ONLINE, 5, chats=2, max_chats=max_chats)
    assert utilization(load(snapshots)) == {"avg_active_chats": 2.0, "max_chats": max_chats, "utilization": None,
                                            "chats_handled": None}


def test_chats_handled_is_counted_for_monitored_agents_only(load):
    snapshots = Snapshots().add(0, "a1", ONLINE, 5, chats=1).add(0, "a2", ONLINE, 5, chats=1)
    snapshots.add(0, "a3", ONLINE, 5).agent("a1", monitored=True).agent("a2").agent("a3", monitored=True)
    snapshots.chat("c1", "a1", T0).chat("c2", "a1", T0 + timedelta(hours=2)).chat("c3", "a2", T0)
    snapshots.chat("c4", "a1", T0 - timedelta(days=1))  # another day
    source = load(snapshots)
    assert utilization(source, "a1")["chats_handled"] == 2
    assert utilization(source, "a2")["chats_handled"] is None
    assert utilization(source, "a3")["chats_handled"] == 0


def test_capacity_shows_available_slots_beside_the_chats_of_monitored_agents(load):
    snapshots = Snapshots().agent("a1", monitored=True).agent("a2")
    snapshots.run(T0, slots=3)
    snapshots.add(0, "a1", ONLINE, 5, chats=2).add(0, "a2", ONLINE, 5, chats=4)
    rows = daily.capacity(load(snapshots), DAY).to_pylist()
    assert [(r["available_slots"], r["monitored_active_chats"], r["monitored_agents_available"]) for r in rows] == [
        (3, 2, 1)]


def test_a_day_without_data_is_an_empty_table_of_the_view_schema(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 5))
    empty = daily.daily_utilization(source, DAY - timedelta(days=30))
    assert empty.num_rows == 0
    assert empty.schema == daily.SCHEMAS["agent_utilization_daily"]


def test_views_read_a_warehouse_written_by_the_storage_layer(tmp_path):
    """The SQLite text timestamps the warehouse writes are what EPOCH_US parses."""
    url = store(Snapshots().add(0, "a1", ONLINE, 1.5).arrow(), "sqlite", tmp_path)
    with sa.create_engine(url).connect() as conn:
        stored = conn.exec_driver_sql("SELECT state_started_at FROM agent_state_snapshot").scalar_one()
    assert stored == (T0 - timedelta(seconds=1.5)).strftime("%Y-%m-%d %H:%M:%S.%f")
    assert daily.intervals(url)["started_at"].to_pylist() == [T0 - timedelta(seconds=1.5)]


def test_an_interval_spanning_a_whole_day_gives_that_day_every_second(load):
    day_before = MIDNIGHT - timedelta(days=1, hours=1)  # 23:00 the day before DAY, to 01:00 after it
    snapshots = Snapshots(interval_s=86400).add(day_before, "a1", AWAY, 1).add(MIDNIGHT + timedelta(hours=1), "a1",
                                                                                AWAY, 26 * 3600 + 1)
    source = load(snapshots)
    assert seconds_by_state(daily.daily_time_in_state(source, DAY)) == {("a1", "Away", True): 86400.0}
    hours = daily.hourly_time_in_state(source, DAY)
    assert hours["hour"].to_pylist() == list(range(24)) and set(hours["seconds"].to_pylist()) == {3600.0}


def test_a_days_query_is_transpiled_once_per_process_and_other_days_reuse_it():
    views._compiled.cache_clear()
    first = daily.day_sql("agent_time_in_state_daily", "duckdb", DAY)
    second = daily.day_sql("agent_time_in_state_daily", "duckdb", NEXT_DAY)
    assert views._compiled.cache_info().misses == 1 and views._compiled.cache_info().hits == 1
    assert first != second and str(NEXT_DAY) in second


def test_sqlite_reads_a_day_from_the_covering_index_in_the_windows_order(tmp_path):
    """The day's bounds are a condition on the table the window reads, so SQLite reads the covering index
    (migration 0003): no table lookup. Once ANALYZE has given it statistics (many snapshots per agent), it seeks
    each agent's day (skip-scan) in the window's order, with no sort before the window."""
    snapshots = Snapshots()
    for minute in range(30):
        snapshots.add(60 * minute, "a1", ONLINE, 10 + 60 * minute).add(60 * minute, "a2", AWAY, 5 + 60 * minute)
    url = store(snapshots.arrow(), "sqlite", tmp_path)
    sql = daily.day_sql("agent_time_in_state_daily", "sqlite", DAY)
    with sa.create_engine(url).connect() as conn:
        def plan() -> list[str]:
            lines = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()]
            scan = next(i for i, line in enumerate(lines) if " s USING " in line)
            return lines[scan:scan + 4]

        assert plan()[0].endswith("s USING COVERING INDEX ix_agent_state_snapshot_reporting")
        conn.exec_driver_sql("ANALYZE")
        lines = plan()
        assert lines[0] == ("SEARCH s USING COVERING INDEX ix_agent_state_snapshot_reporting "
                            "(ANY(agent_id) AND snapshot_at>? AND snapshot_at<?)")
        assert not any("TEMP B-TREE" in line for line in lines), lines
