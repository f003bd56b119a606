"""Issue 1: the floor. How fast can the payloads of one full chat poll merely be downloaded and decoded?

Plain ``requests`` + ``orjson``, no processing, one thread (the fastest on 2 shared cores, PLATFORM.md), the same
``chat/{chatId}?from=0`` payloads the pipeline polls, against a warm simulator (encoded payloads cached per chat and
cursor). The simulator runs in its own process; its CPU share must stay well under a fifth of a core. Also timed:
``availableAgents`` for the whole account, the other large payload of a run.

    python bench/floor.py [CHATS] [--events 1000 --agents 5000 --repeat 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datetime import timedelta

from _harness import (
    AHEAD_S,
    BUSY,
    SimProcess,
    as_list,
    chat_urls,
    floor_pass,
    fmt,
    load,
    plain_http,
    raw_sessions,
    table,
    timed,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chats", nargs="?", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with SimProcess(args.agents, args.chats, args.events) as sim:
        http = plain_http()
        sessions = raw_sessions(sim, http)
        sim.set_clock(BUSY + timedelta(seconds=AHEAD_S))
        urls = chat_urls(sessions)
        with timed(sim) as cold:
            events, nbytes = floor_pass(http, urls)
        warm = []
        for _ in range(args.repeat):
            with timed(sim) as t:
                floor_pass(http, urls)
            warm.append(t)
        best = min(warm, key=lambda t: t.wall)
        agents_url = f"{sessions[0].url}/availableAgents?v=1&NC=true"
        http.get(agents_url, headers=sessions[0].auth)
        with timed(sim) as agents_t:
            for _ in range(args.repeat):
                body = http.get(agents_url, headers=sessions[0].auth).content
                agents = len(as_list(orjson.loads(body)["availableAgents"]["agents"]["agent"]))
        per_request = len(urls) / 1000  # simulator CPU in ms per request: a figure that does not move with the
        rows = [  # client's speed (its share of a core does: a slower client on a loaded machine lowers it)
            ["chat polls, simulator cache cold (1st pass)", fmt(events / cold.wall), f"{nbytes / cold.wall / 1e6:.0f}",
             f"{cold.wall:.2f}", cold.cpu_share, cold.sim_share, f"{cold.sim_cpu / per_request:.2f}"],
            [f"chat polls, warm (best of {args.repeat})", fmt(events / best.wall), f"{nbytes / best.wall / 1e6:.0f}",
             f"{best.wall:.2f}", best.cpu_share, best.sim_share, f"{best.sim_cpu / per_request:.2f}"],
            [f"availableAgents ({agents:,} agents)", fmt(agents * args.repeat / agents_t.wall) + " agents/s",
             f"{len(body) * args.repeat / agents_t.wall / 1e6:.0f}", f"{agents_t.wall / args.repeat:.3f}",
             agents_t.cpu_share, agents_t.sim_share, f"{1000 * agents_t.sim_cpu / args.repeat:.2f}"],
        ]
        print(f"floor: {sim.chat_count} chats, {events:,} events, {nbytes / 1e6:.0f} MB per pass; [{load()}]")
        print(table(["plain requests + orjson", "events/s", "MB/s", "seconds", "client CPU", "sim CPU",
                     "sim ms/request"], rows))
        share = best.sim_cpu / best.wall
        verdict = "well under" if share < 0.1 else "under" if share < 0.2 else "NOT under"
        print(f"\nsimulator CPU while warm: {best.sim_share} of a core ({verdict} 20%; 'well under' = below 10%), "
              f"{best.sim_cpu / per_request:.2f} ms per request")


if __name__ == "__main__":
    main()
