"""Issue 6: memory. Peak RSS of the process doing a full poll (every snapshot_job step) of 5,000 agents and
500 chats x 1,000 events must stay under 400 MB.

This process runs only our pipeline (the simulator is another process); the peak is the kernel's high-water mark
(``VmHWM``), read before the run (imports, logins) and after it. What keeps it low: polls run at most
2 x LP_CHAT_CONCURRENCY ahead of the writes, each batch of 100 chats is committed and appended to the run's
chat_event Parquet file (``ParquetStore.fact_writer``) and then dropped.

    python bench/memory.py [CHATS] [--events 1000 --agents 5000]
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import AHEAD_S, BUSY, Pipeline, SimProcess, load, timed


def vm(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chats", nargs="?", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=5000)
    args = parser.parse_args()
    with SimProcess(args.agents, args.chats, args.events) as sim:
        sim.set_clock(BUSY)
        pipeline = Pipeline(sim)
        for session in pipeline.connection.client.sessions:  # log in first: the baseline includes the sessions
            pipeline.connection.client.info(session)
        before = vm("VmHWM")
        with timed(sim) as t:
            _result, summary = pipeline.run(before_chats=lambda: sim.set_clock(BUSY + timedelta(seconds=AHEAD_S)))
        pipeline.close()
    peak = vm("VmHWM")
    print(f"full poll: {summary.agents:,} agents, {summary.chats} chats, {summary.events:,} events in {t.wall:.1f} s "
          f"(sim CPU {t.sim_share}); [{load()}]")
    print(f"peak RSS (VmHWM): {before:.0f} MB before the run (imports, {len(sim.by_login)} sessions), "
          f"{peak:.0f} MB after; goal < 400 MB: {'met' if peak < 400 else 'NOT met'}")


if __name__ == "__main__":
    main()
