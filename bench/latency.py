"""Issue 5: latency-bound polling. 500 active chats, the simulator answering each chat request after 50 ms: one
poll of every chat must finish within 2 s, with at most LP_CHAT_CONCURRENCY requests in flight (each agent
session's connection pool is sized to match, so no connection is opened and dropped per request) and each chat's
URL read once per run (its rate limit kept).

Run 1 loads the chats (no added latency); then for each concurrency a run polls every chat from its cursor after
the clock moved a little (a few new events per chat), with 50 ms added to every ``chat/{chatId}`` answer. The
simulator's CPU share is beside each figure.

    python bench/latency.py [CHATS] [--latency-ms 50 --concurrency 8 16 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Pipeline, SimProcess, load, table, tmpdir
from incremental import poll

from pipelines.liveperson.config import DEFAULT_CHAT_CONCURRENCY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chats", nargs="?", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 16, 32])
    args = parser.parse_args()
    rows = []
    with SimProcess(args.agents, args.chats, args.events, open_only=True) as sim:
        folder, state = tmpdir("bench-latency-"), f"{tmpdir('bench-state-')}/state"
        first = Pipeline(sim, folder=folder, state_dir=state)
        loaded, _, _ = poll(first, sim, 0.0)
        first.close()
        sim.latency(args.latency_ms)
        for n, concurrency in enumerate(args.concurrency, start=1):
            pipeline = Pipeline(sim, concurrency=concurrency, folder=folder, state_dir=state)
            assert pipeline.connection.settings.chat_concurrency == concurrency
            events, t, _ = poll(pipeline, sim, 2.0 * n)
            pipeline.close()
            floor = sim.chat_count * args.latency_ms / 1000 / concurrency
            label = f"{concurrency} (default)" if concurrency == DEFAULT_CHAT_CONCURRENCY else concurrency
            rows.append([label, events, f"{t.wall:.2f}", f"{floor:.2f}", t.cpu_share, t.sim_share,
                         "met" if t.wall <= 2.0 else "NOT met"])
        sim.clear_faults()
    print(f"{sim.chat_count} active chats ({loaded:,} events loaded first), +{args.latency_ms} ms per chat request; "
          f"[{load()}]")
    print(table(["LP_CHAT_CONCURRENCY", "new events", "seconds", "latency floor", "our CPU", "sim CPU",
                 "<= 2 s"], rows))


if __name__ == "__main__":
    main()
