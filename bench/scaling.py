"""Issue 8: scaling. Events/s of the chat step at 10, 100 and 1,000 chats (5,000 agents, 1,000 events each) and
agents/s of the ``availableAgents`` step at 50, 500 and 5,000 agents: is the cost linear?

Each figure is a second run against a warm simulator (its own process; its CPU share beside each figure); the
chat step is ``SnapshotRunner.chat_events``, the agent step ``SnapshotRunner.available_agents`` (HTTP, parse,
``agent_state_snapshot`` + ``agent``/``skill``/``agent_skill`` upserts, the snapshot's Parquet file and the
dimension files).

    python bench/scaling.py [--chats 10 100 1000 --agents 50 500 5000 --events 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import BUSY, Pipeline, SimProcess, fmt, load, table, timed, tmpdir
from ingest_e2e import run_ours

from pipelines.storage.lock import writer_lock


def agent_step(sim: SimProcess, state_dir: str) -> tuple[int, object]:
    sim.set_clock(BUSY)
    pipeline = Pipeline(sim, state_dir=state_dir)
    with writer_lock(pipeline.warehouse, 10.0):
        runner = pipeline.runner()
        runner.begin()
        runner.client.healthy_session()  # the login is not what is measured
        with timed(sim) as t:
            result = runner.available_agents()
        runner.finish()
    pipeline.close()
    return result.rows["agent_state_snapshot"], t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--agents", type=int, nargs="+", default=[50, 500, 5000])
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    rows = []
    base = None
    for chats in args.chats:
        with SimProcess(5000, chats, args.events) as sim:
            state = f"{tmpdir('bench-state-')}/state"
            run_ours(sim, state, None)
            events, t, _ = run_ours(sim, state, None)
        rate = events / t.wall
        base = base or rate
        rows.append([f"chat step, {sim.chat_count:,} chats", f"{events:,} events", f"{t.wall:.2f}", fmt(rate) + "/s",
                     f"{1e6 * t.wall / events:.1f} us", f"{rate / base:.2f}", t.sim_share])
    base = None
    for agents in args.agents:
        with SimProcess(agents, 1, 10) as sim:
            state = f"{tmpdir('bench-state-')}/state"
            agent_step(sim, state)
            n, t = agent_step(sim, state)
        rate = n / t.wall
        base = base or rate
        rows.append([f"agent step, {agents:,} agents", f"{n:,} agents", f"{t.wall:.2f}", fmt(rate) + "/s",
                     f"{1e6 * t.wall / n:.0f} us", f"{rate / base:.2f}", t.sim_share])
    print(f"[{load()}]")
    print(table(["", "rows", "seconds", "rate", "per row", "rate vs smallest", "sim CPU"], rows))
    print("\nlinear cost = the same rate at every size (rate vs smallest ~ 1); above 1: fixed costs amortised")


if __name__ == "__main__":
    main()
