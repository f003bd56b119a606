"""agent_state_interval: one rule per test, each on SQLite and on DuckDB over Parquet; then the macros, view
creation in a warehouse, and identical answers on SQLite, PostgreSQL and DuckDB for a generated multi-day world."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines.reporting import daily, views
from tests.reporting.conftest import AWAY, DAY, OFFLINE, ONLINE, T0, Snapshots, generated_world, store


def spans(source: str, agent_id: str = "a1") -> list[tuple[str | None, float, float, bool]]:
    """The agent's intervals as (state, start, end, observed), times in seconds from T0."""
    out = []
    for row in daily.intervals(source).to_pylist():
        if row["agent_id"] == agent_id:
            out.append(
                (
                    row["chat_state"],
                    (row["started_at"] - T0).total_seconds(),
                    (row["ended_at"] - T0).total_seconds(),
                    row["observed"],
                )
            )
    return out


def test_a_change_between_snapshots_is_placed_at_its_state_started_at(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 300).add(60, "a1", ONLINE, 360).add(120, "a1", AWAY, 25))
    assert spans(source) == [("Online", -300, 95, True), ("Away", 95, 120, True)]


def test_offline_with_elapsed_zero_continues_the_interval(load):
    source = load(Snapshots().add(0, "a1", OFFLINE, 0).add(60, "a1", OFFLINE, 0).add(120, "a1", OFFLINE, 0))
    assert spans(source) == [("Offline", 0, 120, True)]


def test_offline_with_elapsed_zero_after_another_state_starts_at_the_first_snapshot_that_saw_it(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", OFFLINE, 0).add(120, "a1", OFFLINE, 0))
    assert spans(source) == [("Online", -10, 60, True), ("Offline", 60, 120, True)]


def test_a_tracked_start_after_untracked_snapshots_of_the_same_state_continues_the_interval(load):
    source = load(Snapshots().add(0, "a1", OFFLINE, 0).add(60, "a1", OFFLINE, 0).add(120, "a1", OFFLINE, 500))
    assert spans(source) == [("Offline", 0, 120, True)]


def test_start_times_within_two_seconds_are_one_start(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 100).add(60, "a1", ONLINE, 161.5).add(120, "a1", ONLINE, 219.8))
    assert spans(source) == [("Online", -100, 120, True)]


def test_an_away_restarted_more_than_two_seconds_later_keeps_its_unseen_excursion(load):
    source = load(Snapshots().add(0, "a1", AWAY, 100).add(60, "a1", AWAY, 10).add(120, "a1", AWAY, 70))
    assert spans(source) == [("Away", -100, 50, True), ("Away", 50, 120, True)]


def test_an_online_flap_no_snapshot_saw_is_away_for_the_second_half_of_its_window(load):
    # Online at 0 and 60 s, but restarted at 50 s: it left somewhere in (0, 50), on average at 25 s.
    source = load(Snapshots().add(0, "a1", ONLINE, 100).add(60, "a1", ONLINE, 10).add(120, "a1", ONLINE, 70))
    assert spans(source) == [("Online", -100, 25, True), ("Away", 25, 50, True), ("Online", 50, 120, True)]


def test_a_gap_longer_than_two_intervals_is_unobserved_and_not_filled(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", ONLINE, 70).add(400, "a1", AWAY, 30))
    assert spans(source) == [("Online", -10, 60, True), (None, 60, 370, False), ("Away", 370, 400, True)]


def test_a_gap_of_exactly_two_intervals_is_still_observed(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 10).add(120, "a1", AWAY, 30))
    assert spans(source) == [("Online", -10, 90, True), ("Away", 90, 120, True)]


def test_a_state_whose_start_precedes_the_gap_covers_the_gap(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 10).add(600, "a1", ONLINE, 610))
    assert spans(source) == [("Online", -10, 600, True)]


def test_untracked_offline_after_a_gap_leaves_the_gap_unobserved(load):
    source = load(Snapshots().add(0, "a1", OFFLINE, 0).add(600, "a1", OFFLINE, 0))
    assert spans(source) == [("Offline", 0, 0, True), (None, 0, 600, False), ("Offline", 600, 600, True)]


def test_the_last_interval_ends_at_the_last_snapshot(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 30).add(60, "a1", ONLINE, 90))
    assert spans(source)[-1] == ("Online", -30, 60, True)


def test_a_start_reported_before_the_previous_snapshot_is_placed_at_that_snapshot(load):
    source = load(Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", AWAY, 90))
    assert spans(source) == [("Online", -10, 0, True), ("Away", 0, 60, True)]


def test_snapshots_of_failed_runs_are_ignored(load):
    snapshots = Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", AWAY, 5, status="failed").add(120, "a1", ONLINE, 130)
    assert spans(load(snapshots)) == [("Online", -10, 120, True)]


def test_agents_are_reconstructed_independently(load):
    snapshots = Snapshots().add(0, "a1", ONLINE, 10).add(0, "a2", AWAY, 20).add(60, "a1", AWAY, 5)
    source = load(snapshots.add(60, "a2", AWAY, 80))
    assert spans(source, "a2") == [("Away", -20, 60, True)]
    assert spans(source, "a1") == [("Online", -10, 55, True), ("Away", 55, 60, True)]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "parquet"])
def test_macros_give_the_same_values_on_every_backend(kind, tmp_path, request):
    """EPOCH_US keeps microseconds exactly, IDIV truncates, DAY_DATE gives the UTC day, on timestamps stored the
    way each backend stores them."""
    snapshots = Snapshots()
    for at in ("1970-01-01 00:00:00.000001", "2024-02-29 23:59:59.999999", "2026-11-27 05:03:07.120000"):
        snapshots.add(datetime.fromisoformat(at).replace(tzinfo=UTC), "a1", ONLINE)
    postgres_url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    source = store(snapshots.arrow(), kind, tmp_path, postgres_url)
    sql = (
        "SELECT EPOCH_US(snapshot_at), IDIV(EPOCH_US(snapshot_at), 86400000000), "
        "CAST(DAY_DATE(IDIV(EPOCH_US(snapshot_at), 86400000000)) AS TEXT) FROM agent_state_snapshot"
    )
    with views.connect(source) as (dialect, run):
        rows = sorted(tuple(row.values()) for row in run(views.render(sql, dialect)).to_pylist())
    assert rows == [
        (1, 0, "1970-01-01"),
        (1709251199999999, 19782, "2024-02-29"),
        (1795755787120000, 20784, "2026-11-27"),
    ]


def test_created_views_answer_like_the_inlined_queries(tmp_path):
    snapshots = Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", AWAY, 5).add(500, "a1", OFFLINE, 0)
    url = store(snapshots.agent("a1").arrow(), "sqlite", tmp_path)
    assert views.create_views(url) == views.view_names()
    assert views.create_views(url) == views.view_names()  # replaces
    with sa.create_engine(url).connect() as conn:
        installed = conn.exec_driver_sql(
            "SELECT chat_state, seconds, observed FROM agent_state_interval ORDER BY started_at_us"
        ).all()
    expected = [(r["chat_state"], r["seconds"], r["observed"]) for r in daily.intervals(url).to_pylist()]
    assert [(state, seconds, bool(observed)) for state, seconds, observed in installed] == expected


@pytest.mark.postgres
def test_views_are_created_in_postgresql(postgres_url, tmp_path):
    url = store(
        Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", AWAY, 5).agent("a1").arrow(),
        "postgres",
        tmp_path,
        postgres_url,
    )
    views.create_views(url)
    with sa.create_engine(url).connect() as conn:
        assert conn.exec_driver_sql(
            "SELECT chat_state, seconds FROM agent_time_in_state_daily WHERE observed ORDER BY chat_state"
        ).all() == [("Away", 5.0), ("Online", 65.0)]


@pytest.fixture(scope="module")
def world_sources(tmp_path_factory, postgres_server_url) -> dict[str, str]:
    """The generated world stored three ways (the PostgreSQL database is created here, once per module)."""
    tables = generated_world().arrow()
    tmp_path = tmp_path_factory.mktemp("world")
    database = f"reporting_{datetime.now(UTC):%H%M%S%f}"
    engine = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
    engine.dispose()
    postgres_url = sa.make_url(postgres_server_url).set(database=database).render_as_string(hide_password=False)
    return {kind: store(tables, kind, tmp_path / kind, postgres_url) for kind in ("sqlite", "postgres", "parquet")}


@pytest.mark.postgres
@pytest.mark.parametrize(
    "compute",
    [
        lambda source: daily.intervals(source),
        *[
            lambda source, d=DAY + timedelta(days=k), f=f: f(source, d)
            for k in range(3)
            for f in (
                daily.daily_time_in_state,
                daily.hourly_time_in_state,
                daily.daily_utilization,
                daily.hourly_utilization,
                daily.capacity,
                daily.intervals,
            )
        ],
    ],
    ids=[
        "intervals",
        *[
            f"{f}-day{k}"
            for k in range(3)
            for f in (
                "daily_time_in_state",
                "hourly_time_in_state",
                "daily_utilization",
                "hourly_utilization",
                "capacity",
                "intervals_of_day",
            )
        ],
    ],
)
def test_sqlite_postgresql_and_duckdb_over_parquet_give_identical_answers(world_sources, compute):
    results = {kind: compute(source) for kind, source in world_sources.items()}
    assert results["sqlite"].num_rows > 0
    assert results["postgres"].equals(results["sqlite"])
    assert results["parquet"].equals(results["sqlite"])


def test_the_view_list_is_in_dependency_order():
    names = views.view_names()
    assert set(names) == {path.stem for path in Path(views.VIEWS_DIR).glob("*.sql")}
    assert (
        names.index("agent_state_interval")
        < names.index("agent_time_in_state_hourly")
        < names.index("agent_time_in_state_daily")
    )
    assert names.index("agent_utilization_hourly") < names.index("agent_utilization_daily")


def test_a_duckdb_connection_over_parquet_holds_the_contract_tables_and_every_view(tmp_path):
    snapshots = Snapshots().add(0, "a1", ONLINE, 10).add(60, "a1", AWAY, 5).agent("a1")
    root = store(snapshots.arrow(), "parquet", tmp_path)
    con = views.parquet_connection(root)
    assert con.sql("SELECT chat_state, seconds FROM agent_time_in_state_daily ORDER BY chat_state").fetchall() == [
        ("Away", 5.0),
        ("Online", 65.0),
    ]
    assert con.sql("SELECT COUNT(*) FROM chat_session").fetchall() == [(0,)]  # no file yet: empty, typed


def test_a_parquet_root_without_contract_tables_is_an_error_not_an_empty_report(tmp_path):
    with pytest.raises(FileNotFoundError):
        daily.daily_time_in_state(str(tmp_path), DAY)
