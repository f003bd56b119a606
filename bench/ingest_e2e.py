"""Issue 2: end-to-end event ingest, HTTP to committed SQLite rows + Parquet files + cursors, side by side with
the floor (plain requests + orjson, no processing) and the naive pandas script, all in one run.

Ours is ``SnapshotRunner.chat_events`` (the step ``snapshot_job`` runs), timed alone: chats registered by the run's
earlier steps, then every chat polled from 0, events and cursors committed, the run's chat_event Parquet written.
Every figure is the best of ``--repeat`` against a warm simulator (its per-session payload cache filled by an
untimed pass), with the simulator's CPU share (separate process) beside it.

    python bench/ingest_e2e.py [CHATS] [--events 1000 --agents 5000 --repeat 2 --concurrency N --dagster]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    AHEAD_S,
    BUSY,
    Pipeline,
    SimProcess,
    chat_urls,
    floor_pass,
    fmt,
    load,
    plain_http,
    raw_sessions,
    table,
    timed,
    tmpdir,
)
from _naive import naive_ingest


def run_ours(sim: SimProcess, state_dir: str, concurrency: int | None) -> tuple[int, object, float]:
    """One fresh warehouse, one run; returns (events, Timed of the chat step, whole run wall seconds)."""
    sim.set_clock(BUSY)
    pipeline = Pipeline(sim, concurrency=concurrency, state_dir=state_dir)
    box = {}

    def measure(step):
        with timed(sim) as t:
            result = step()
        box["t"] = t
        return result

    start = time.perf_counter()
    result, summary = pipeline.run(before_chats=lambda: sim.set_clock(BUSY + timedelta(seconds=AHEAD_S)),
                                   measure=measure)
    whole = time.perf_counter() - start
    pipeline.close()
    assert summary.status == "ok", summary
    return result.rows["chat_event"], box["t"], whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chats", nargs="?", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=None, help="LP_CHAT_CONCURRENCY (default: the setting's)")
    parser.add_argument("--dagster", action="store_true", help="also time `dagster job execute` of snapshot_job")
    parser.add_argument("--only-ours", action="store_true", help="A/B runs: ours alone, with its CPU seconds")
    args = parser.parse_args()

    print(f"[{load()}] starting the simulator: {args.agents} agents, {args.chats} chats x {args.events} events")
    with SimProcess(args.agents, args.chats, args.events) as sim:
        print(f"simulator pid {sim.pid}: {sim.chat_count} chats over {len(sim.by_login)} monitored logins")
        state_dir = f"{tmpdir('bench-state-')}/state"
        warm = run_ours(sim, state_dir, args.concurrency)  # logs in, fills the simulator's cache for our sessions
        if args.only_ours:
            for _ in range(args.repeat):
                n, t, _ = run_ours(sim, state_dir, args.concurrency)
                print(f"ours: {n:,} events in {t.wall:.2f} s = {n / t.wall:,.0f} events/s; CPU {t.cpu:.2f} s = "
                      f"{1e6 * t.cpu / n:.1f} us/event; sim CPU {t.sim_share}; [{load()}]")
            return
        http = plain_http()
        sessions = raw_sessions(sim, http)
        urls = chat_urls(sessions)
        floor_pass(http, urls)  # warm the cache for the plain sessions too

        floors, nai, ours = [], [], []
        for _ in range(args.repeat):
            with timed(sim) as t:
                events, nbytes = floor_pass(http, urls)
            floors.append((t.wall, events, nbytes, t))
            folder = tmpdir("bench-naive-")
            with timed(sim) as t:
                n = naive_ingest(http, urls, folder)
            nai.append((t.wall, n, t))
            n, t, whole = run_ours(sim, state_dir, args.concurrency)
            ours.append((t.wall, n, t, whole))
        fastest = lambda runs: min(runs, key=lambda r: r[0])  # noqa: E731
        floor, naive, mine = fastest(floors), fastest(nai), fastest(ours)
        assert floor[1] == naive[1] == mine[1], (floor[1], naive[1], mine[1])
        rows = [
            ["floor: requests + orjson, no processing", fmt(floor[1] / floor[0]), f"{floor[0]:.2f}",
             floor[3].cpu_share, floor[3].sim_share, "1.00"],
            ["ours: SnapshotRunner.chat_events (SQLite + Parquet)", fmt(mine[1] / mine[0]), f"{mine[0]:.2f}",
             mine[2].cpu_share, mine[2].sim_share, f"{mine[0] / floor[0]:.2f}"],
            ["reference: naive pandas script", fmt(naive[1] / naive[0]), f"{naive[0]:.2f}",
             naive[2].cpu_share, naive[2].sim_share, f"{naive[0] / floor[0]:.2f}"],
        ]
        print(f"\n{sim.chat_count} chats, {mine[1]:,} events ({floor[2] / 1e6:.0f} MB) per pass; best of {args.repeat};"
              f" [{load()}]")
        print(table(["", "events/s", "seconds", "our CPU", "sim CPU", "x floor time"], rows))
        print(f"\nours / naive: {naive[0] / mine[0]:.2f}x faster; goal >= 150,000 events/s: "
              f"{'met' if mine[1] / mine[0] >= 150_000 else 'NOT met'}; within 4x of the floor: "
              f"{'met' if mine[0] / floor[0] <= 4 else 'NOT met'}")
        print(f"whole run (every snapshot_job step, sessions already open): {mine[3]:.2f} s; "
              f"first run incl. {len(sim.by_login)} logins: {warm[2]:.2f} s")
        if args.dagster:
            dagster_wall(sim, state_dir)


def dagster_wall(sim: SimProcess, state_dir: str) -> None:
    """``dagster job execute -j snapshot_job`` from a shell: process start-up, imports, every step.

    The chats are registered at T by a run of ours that stops before polling, then the clock moves on, so the
    job polls the same chats (plus the agents' newer ones) as the timed step above."""
    sim.set_clock(BUSY)
    pipeline = Pipeline(sim, state_dir=state_dir)
    with_warehouse = pipeline.warehouse.url.render_as_string(hide_password=False)
    pipeline.run(measure=lambda step: None)  # registers, does not poll
    pipeline.close()
    sim.set_clock(BUSY + timedelta(seconds=AHEAD_S))
    env = {**os.environ, **sim.env(state_dir), "WAREHOUSE_URL": with_warehouse,
           "PARQUET_ROOT": f"{pipeline.folder}/parquet", "DAGSTER_HOME": tmpdir("bench-dagster-")}
    Path(env["DAGSTER_HOME"], "dagster.yaml").touch()
    with timed(sim) as t:
        done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m",
                               "pipelines.definitions", "-j", "snapshot_job"], env=env, capture_output=True, text=True)
    import sqlalchemy as sa

    engine = sa.create_engine(with_warehouse)
    with engine.connect() as db:
        events = db.execute(sa.text("SELECT events FROM snapshot_run ORDER BY started_at DESC LIMIT 1")).scalar()
    print(f"`dagster job execute -j snapshot_job`: {t.wall:.1f} s wall (exit {done.returncode}), {events:,} events, "
          f"sim CPU {t.sim_share}")
    if done.returncode:
        print(done.stderr[-2000:])


if __name__ == "__main__":
    main()
