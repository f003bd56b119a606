"""Profile ``SnapshotRunner.chat_events`` with py-spy (every thread, native frames off) and print where time goes.

py-spy attaches to this process only for the timed step (the simulator runs in another process); the top
functions by own time and by total time are printed, and the collapsed stacks are kept for a flame graph.

    python bench/profile_ingest.py [CHATS] [--events 1000 --agents 5000 --out /tmp/chat_events.stacks]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import AHEAD_S, BUSY, Pipeline, SimProcess, load, timed, tmpdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("chats", nargs="?", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--out", default="/tmp/chat_events.stacks")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with SimProcess(args.agents, args.chats, args.events) as sim:
        state = f"{tmpdir('bench-state-')}/state"
        for attempt in ("warm", "profiled"):
            sim.set_clock(BUSY)
            pipeline = Pipeline(sim, state_dir=state)

            def measure(step, attempt=attempt):
                if attempt == "warm":
                    return step()
                spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(os.getpid()),
                                        "-r", "250", "-f", "raw", "-o", args.out, "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
                with timed(sim) as t:
                    result = step()
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
                print(f"[{load()}] chat_events: {result.rows['chat_event']:,} events in {t.wall:.2f} s, "
                      f"our CPU {t.cpu_share}, sim CPU {t.sim_share}")
                return result

            pipeline.run(before_chats=lambda: sim.set_clock(BUSY + timedelta(seconds=AHEAD_S)), measure=measure)
            pipeline.close()
    report(args.out, args.top)


def report(path: str, top: int) -> None:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if any("wait (threading.py" in f or ("_worker (concurrent" in f and f is frames[-1]) for f in frames[-1:]):
            continue
        samples += n
        if frames:
            own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames}:
            total[frame] += n
    print(f"\n{samples} samples (idle excluded); top by own time:")
    for frame, n in own.most_common(top):
        print(f"{100 * n / samples:6.1f}%  {frame}")
    print("\ntop by total time (inclusive):")
    for frame, n in total.most_common(top + 15):
        print(f"{100 * n / samples:6.1f}%  {frame}")


def _short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file, _, _line = where.rpartition(":")
    return f"{name} ({'/'.join(file.split('/')[-2:])})"


if __name__ == "__main__":
    main()
