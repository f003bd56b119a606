"""Time in state reconstructed from 1-minute snapshots, compared with the simulator's exact state history.

The library is driven on the simulator's clock (paused during each snapshot, moved a minute between them), with a
10-minute simulator outage in the window. Over observed time only, every agent-state total must be within 1 % of
the truth (or 60 s for states under 100 minutes), every interval start taken from ``elapsedTimeInState`` must be
a true state change to the second, and the outage must be reported as unobserved, never filled.

CI runs 3 simulated hours; ``ACCURACY_FULL=1`` runs a whole simulated day (the figures in the issue note).
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from pipelines.ingest import SnapshotRunner
from pipelines.liveperson.connect import connect
from pipelines.liveperson.simulator import SimClock, Simulator, WorldConfig
from pipelines.reporting import daily
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse

FULL = os.environ.get("ACCURACY_FULL") == "1"
START = datetime(2026, 11, 26, 0, 0, tzinfo=UTC) if FULL else datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
HOURS = 24 if FULL else 3
OUTAGE_START = START + timedelta(hours=HOURS / 2)
OUTAGE_END = OUTAGE_START + timedelta(minutes=10)
AGENTS = 50
STATE_NAMES = {1: "Offline", 2: "Online", 3: "Occupied", 4: "Away"}


def snapshot_agents(conn, warehouse: Warehouse, parquet: ParquetStore) -> str:
    """The agents step of a run (what time in state is made of), as ``snapshot_job`` runs it."""
    runner = SnapshotRunner.for_connection(conn, warehouse, parquet, interval_s=60)
    runner.begin()
    runner.available_agents()
    return runner.finish().status


@pytest.fixture(scope="module")
def reconstructed(tmp_path_factory):
    """Run the snapshots over the window; yield the simulator and the reconstructed intervals."""
    folder = tmp_path_factory.mktemp("accuracy")
    sim = Simulator(WorldConfig(seed=7, agents=AGENTS), clock=SimClock(at=START, paused=True)).start()
    sim.faults.set(endpoint="*", kind="outage", start=OUTAGE_START.isoformat(), end=OUTAGE_END.isoformat())
    url = f"sqlite:///{folder}/warehouse.db"
    warehouse, parquet = Warehouse(url), ParquetStore(str(folder / "parquet"))
    env = {"LP_STATE_DIR": str(folder / "state"), "LP_RETRY_BASE_S": "0.01", "LP_SIMULATOR_LOGINS": "1"}
    statuses = []
    with connect(env, simulator=sim) as conn:
        for _ in range(HOURS * 60):
            statuses.append(snapshot_agents(conn, warehouse, parquet))
            sim.clock.advance(60)
    warehouse.dispose()
    yield sim, daily.intervals(url), statuses
    sim.stop()


def observed_windows(intervals: pa.Table) -> dict[str, list[tuple[datetime, datetime]]]:
    windows: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for row in intervals.to_pylist():
        if row["observed"]:
            windows[row["agent_id"]].append((row["started_at"], row["ended_at"]))
    return windows


def saw(row: dict) -> bool:
    """Whether a snapshot (one each simulated minute from START) fell inside the interval."""
    first = START + timedelta(minutes=-(-(row["started_at"] - START).total_seconds() // 60))
    return first < row["ended_at"]


def overlap_s(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> float:
    return max(0.0, (min(a[1], b[1]) - max(a[0], b[0])).total_seconds())


def test_the_outage_is_reported_unobserved_and_never_filled(reconstructed):
    sim, intervals, statuses = reconstructed
    assert statuses.count("failed") == 10  # one failed run per minute of outage
    truth = sim.truth.agent_state_history(OUTAGE_START - timedelta(hours=12), OUTAGE_END + timedelta(hours=1))
    rows = [r for r in intervals.to_pylist() if r["started_at"] < OUTAGE_END and r["ended_at"] > OUTAGE_START]
    unobserved_agents = {r["agent_id"] for r in rows if not r["observed"]}
    for row in rows:
        if row["observed"]:  # kept only where elapsedTimeInState proves the state held through the outage
            held = [
                s
                for s in truth
                if s.agent_id == row["agent_id"]
                and STATE_NAMES[s.state_code] == row["chat_state"]
                and s.start <= max(row["started_at"], OUTAGE_START)
                and s.end >= min(row["ended_at"], OUTAGE_END)
            ]
            assert held, row
        else:
            assert row["chat_state"] is None
    assert unobserved_agents, "some agent changed state during the outage: that time must be unobserved"


def test_state_changes_seen_by_a_snapshot_are_placed_at_their_true_time(reconstructed):
    sim, intervals, _statuses = reconstructed
    truth_starts = {
        (span.agent_id, STATE_NAMES[span.state_code], span.start)
        for span in sim.truth.agent_state_history(START - timedelta(hours=12), START + timedelta(hours=HOURS))
    }
    rows = intervals.sort_by([("agent_id", "ascending"), ("started_at_us", "ascending")]).to_pylist()
    estimated = {  # an Away no snapshot saw, between two intervals of one state: a flap's estimate
        i
        for i in range(1, len(rows) - 1)
        if rows[i]["chat_state"] == "Away"
        and not saw(rows[i])
        and rows[i - 1]["chat_state"] == rows[i + 1]["chat_state"] in ("Online", "Occupied")
    }
    starts = [
        (r["agent_id"], r["chat_state"], r["started_at"])
        for i, r in enumerate(rows)
        if r["observed"] and r["chat_state"] not in (None, "Offline") and r["started_at"] > START and i not in estimated
    ]
    misplaced = [s for s in starts if s not in truth_starts]
    print(
        f"\ninterval starts from elapsedTimeInState: {len(starts)} (and {len(estimated)} flap estimates), "
        f"not a true change to the second: {len(misplaced)}"
    )
    assert starts and misplaced == []


def test_time_in_state_matches_the_truth_over_observed_time(reconstructed):
    sim, intervals, _statuses = reconstructed
    end = START + timedelta(hours=HOURS)
    windows = observed_windows(intervals)
    measured: dict[tuple[str, str], float] = defaultdict(float)
    for row in intervals.to_pylist():
        if row["observed"]:
            measured[(row["agent_id"], row["chat_state"])] += row["seconds"]
    truth: dict[tuple[str, str], float] = defaultdict(float)
    for span in sim.truth.agent_state_history(START - timedelta(hours=24), end):
        for window in windows.get(span.agent_id, []):
            seconds = overlap_s((span.start, span.end), window)
            if seconds:
                truth[(span.agent_id, STATE_NAMES[span.state_code])] += seconds

    flaps = unseen_flap_seconds(sim, windows)
    logoffs = offline_placement_seconds(sim)
    errors, failures, outside_tolerance = [], [], []
    for key in sorted(set(measured) | set(truth)):
        error = abs(measured[key] - truth[key])
        errors.append(error)
        # The only error allowed: flaps no snapshot could see, and log-offs (elapsed 0: placed at a snapshot).
        if error > flaps[key[0]] + logoffs[key[0]] + 1.0:
            failures.append((key, round(measured[key]), round(truth[key]), round(flaps[key[0]])))
        allowed = 60.0 if truth[key] < 100 * 60 else 0.01 * truth[key]
        if error > allowed:
            outside_tolerance.append((key, round(error)))
    cuts = statistics.quantiles(errors, n=20)
    print(
        f"\nagent-state totals: {len(errors)}; |error| s: median {statistics.median(errors):.1f}, "
        f"p95 {cuts[18]:.1f}, max {max(errors):.1f}; within 1 % (60 s under 100 min): "
        f"{len(errors) - len(outside_tolerance)}/{len(errors)} {outside_tolerance[:5]}; unseen flaps "
        f"{sum(flaps.values()):.0f} s, log-off placement at most {sum(logoffs.values()):.0f} s; "
        f"observed agent-hours {sum(truth.values()) / 3600:.1f}; "
        f"window {HOURS} h from {START:%Y-%m-%d %H:%M}Z"
    )
    assert failures == []
    assert outside_tolerance == []


def unseen_flap_seconds(sim, windows) -> dict[str, float]:
    """Per agent, the windows that hid a flap: from the last snapshot before a state that began and ended
    between two snapshots (no snapshot saw it) to the end of that state. Nothing can be known inside them."""
    snapshots = [START + timedelta(minutes=m) for m in range(HOURS * 60)]
    unseen: dict[str, float] = defaultdict(float)
    for span in sim.truth.agent_state_history(START, START + timedelta(hours=HOURS)):
        if (span.end - span.start) >= timedelta(minutes=1) or span.start <= START:
            continue
        if any(span.start <= at < span.end for at in snapshots):
            continue
        before = START + timedelta(minutes=int((span.start - START).total_seconds() // 60))
        for window in windows.get(span.agent_id, []):
            unseen[span.agent_id] += overlap_s((before, span.end), window)
    return unseen


def offline_placement_seconds(sim) -> dict[str, float]:
    """Per agent, how far each change to Offline lies before the snapshot that first saw it.

    Offline agents report elapsedTimeInState 0 (the published quirk), so no snapshot can tell when a log-off
    happened; the view can only place it within the minute before the snapshot that sees it.
    """
    bound: dict[str, float] = defaultdict(float)
    for span in sim.truth.agent_state_history(START, START + timedelta(hours=HOURS)):
        if span.state_code == 1 and span.start > START:
            offset = (span.start - START).total_seconds() % 60
            bound[span.agent_id] += 60 - offset if offset else 0.0
    return bound
