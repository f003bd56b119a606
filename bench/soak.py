"""Soak: the snapshot schedule for N simulated hours against a faulty simulator; fails if memory or descriptors leak.

    python bench/soak.py                       # 8 simulated hours, a run every simulated minute (480 runs)
    python bench/soak.py --hours 1 --compact   # a line every 10 runs
    python bench/soak.py --warehouse postgresql+psycopg://postgres@127.0.0.1:5432/soak

Library level: one pipeline process with one ``Connection`` (``LP_BASE_URL`` ...) to a simulator served by a
separate process, so that RSS and descriptors are the pipeline's alone; the simulator's clock is paused during each
run and moved on by the interval between runs (``/_sim/clock``), the pipeline's clock in step with it, and
``pipelines.ingest.run_snapshot`` per run (the job's steps). Faults on
every endpoint at once, as in the reliability suite's faulty day: agent sessions expire every 20 simulated minutes,
5% 503, 2% 429 (Retry-After 1 s), 1% truncated bodies, 0.5% HTML pages (status 200), 0.5% XML bodies, 1% latency
spikes (``--spikes-ms``). Retry pauses are shrunk (``LP_RETRY_BASE_S=0.01``).

Each line: simulated time, runs, statuses so far, events stored per real second of running, RSS (``VmRSS`` of
/proc/self/status), open file descriptors (/proc/self/fd), warehouse and Parquet sizes. After ``--warmup`` runs the
median RSS and descriptor count of a window are the baseline; the exit status is 1 when the median of the last
window exceeds it by more than ``--rss-tolerance-mb`` or ``--fd-tolerance``, or when any run failed outright.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from pipelines.ingest import run_snapshot  # noqa: E402
from pipelines.liveperson.client import AgentApiClient  # noqa: E402
from pipelines.liveperson.config import settings_from_env  # noqa: E402
from pipelines.liveperson.connect import Connection  # noqa: E402
from pipelines.liveperson.simulator import SimClock, Simulator, WorldConfig  # noqa: E402
from pipelines.storage.parquet import ParquetStore  # noqa: E402
from pipelines.storage.warehouse import Warehouse  # noqa: E402


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6 if path.exists() else 0.0


def warehouse_mb(warehouse: Warehouse) -> float:
    if warehouse.sqlite_path is not None:
        files = [warehouse.sqlite_path, warehouse.sqlite_path.with_name(warehouse.sqlite_path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists()) / 1e6
    if warehouse.dialect == "postgresql":
        with warehouse.engine.connect() as db:
            return db.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one() / 1e6
    return 0.0


def set_faults(sim: Simulator, spikes_ms: tuple[float, float]) -> None:
    """The faulty day's mix (tests/reliability/support.py), on every endpoint; the first rule that fires wins."""
    sim.faults.set(endpoint="*", kind="expire_session", every_minutes=20)
    sim.faults.set(endpoint="*", kind="server_error", probability=0.05, status=503)
    sim.faults.set(endpoint="*", kind="rate_limit", probability=0.02, retry_after=1)
    sim.faults.set(endpoint="*", kind="truncate", probability=0.01)
    sim.faults.set(endpoint="*", kind="html", probability=0.005, status=200)
    sim.faults.set(endpoint="*", kind="xml", probability=0.005)
    sim.faults.set(endpoint="*", kind="latency", probability=1.0, ms=0, spike_probability=0.01, spike_ms=spikes_ms)


def serve(args: argparse.Namespace, start: datetime, spikes_ms: tuple[float, float], report: Any) -> None:
    """In the simulator's own process: serve with the clock paused at ``start`` and the faults on, until killed."""
    sim = Simulator(WorldConfig(seed=args.seed, agents=args.agents), clock=SimClock(at=start, paused=True)).start()
    set_faults(sim, spikes_ms)
    report.send({"base_url": sim.base_url, "account_id": sim.account_id, "logins": sim.logins(args.logins)})
    sim.serve_forever()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=8.0, help="simulated hours (default 8)")
    parser.add_argument("--interval-s", type=int, default=60, help="simulated seconds between runs (default 60)")
    parser.add_argument("--start", default="2026-11-26T08:00:00+00:00", help="simulated start (ISO 8601)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--logins", type=int, default=6, help="monitored agent logins")
    parser.add_argument("--spikes-ms", default="200,2000", help="latency spike range in ms (default 200,2000)")
    parser.add_argument("--warehouse", help="warehouse URL (default: SQLite in a temporary folder)")
    parser.add_argument("--parquet", help="Parquet root (default: a temporary folder)")
    parser.add_argument("--compact", action="store_true", help="a line every 10 runs instead of every run")
    parser.add_argument("--warmup", type=int, default=60, help="runs before the baseline window (default 60)")
    parser.add_argument("--window", type=int, default=30, help="runs in the baseline and final windows")
    parser.add_argument("--rss-tolerance-mb", type=float, default=48.0)
    parser.add_argument("--fd-tolerance", type=int, default=8)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    lo, hi = (float(x) for x in args.spikes_ms.split(","))
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    warehouse = Warehouse(args.warehouse or f"sqlite:///{work / 'warehouse.db'}")
    parquet_root = Path(args.parquet or work / "parquet")
    parquet = ParquetStore(str(parquet_root))
    start = datetime.fromisoformat(args.start)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    server = context.Process(target=serve, args=(args, start, (lo, hi), send), daemon=True)
    server.start()
    simulator = receive.recv()
    clock = SimClock(at=start, paused=True)  # the pipeline's clock, moved in step with the simulator's
    env = {
        "LP_BASE_URL": simulator["base_url"],
        "LP_ACCOUNT_ID": simulator["account_id"],
        "LP_AGENT_LOGINS": json.dumps([{"username": u, "password": p} for u, p in simulator["logins"]]),
        "LP_STATE_DIR": str(work / "state"),
        "LP_RETRY_BASE_S": "0.01",
        "LP_TIMEOUT_S": "20",
    }
    settings = settings_from_env(env)
    assert settings is not None
    admin = requests.Session()
    total_runs = int(args.hours * 3600 // args.interval_s)
    every = 10 if args.compact else 1
    samples: list[dict[str, Any]] = []
    statuses: Counter[str] = Counter()
    events = errors = failures = 0
    busy_s = 0.0
    window_events, window_busy = 0, 0.0
    wall = time.monotonic()
    print(f"soak: {total_runs} runs, every {args.interval_s} simulated s from {start:%Y-%m-%d %H:%M}Z; work in {work}")
    print(f"{'sim time':>16} {'runs':>5} {'ok/partial/fail/skip':>20} {'ev/s':>8} {'RSS MB':>7} {'fds':>4} "
          f"{'wh MB':>7} {'pq MB':>7}")  # fmt: skip
    try:
        with Connection(settings, clock=clock) as connection:
            connection.client = AgentApiClient(settings, clock, chat_sessions_interval_s=0.0)
            for run in range(1, total_runs + 1):
                began = time.monotonic()
                try:
                    summary = run_snapshot(connection, warehouse, parquet, interval_s=args.interval_s)
                    statuses[summary.status if summary else "skipped"] += 1
                except Exception as exc:  # a run that fails outright is counted and reported, and the soak goes on
                    failures += 1
                    statuses["exception"] += 1
                    print(f"run {run}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    summary = None
                spent = time.monotonic() - began
                busy_s += spent
                window_busy += spent
                if summary is not None:
                    events += summary.events
                    errors += summary.errors
                    window_events += summary.events
                sample = {"run": run, "rss_mb": rss_mb(), "fds": open_fds()}
                samples.append(sample)
                if run % every == 0 or run == total_runs:
                    rate = window_events / window_busy if window_busy else 0.0
                    window_events, window_busy = 0, 0.0
                    mix = "/".join(str(statuses[s]) for s in ("ok", "partial", "failed", "skipped"))
                    print(
                        f"{clock.now():%Y-%m-%d %H:%M} {run:>5} {mix:>20} {rate:>8.0f} {sample['rss_mb']:>7.1f} "
                        f"{sample['fds']:>4} {warehouse_mb(warehouse):>7.1f} {folder_mb(parquet_root):>7.1f}",
                        flush=True,
                    )
                clock.advance(args.interval_s)
                admin.post(f"{simulator['base_url']}/_sim/clock", json={"advance": args.interval_s}).raise_for_status()
    finally:
        simulator_rss = rss_mb(server.pid) if server.is_alive() else float("nan")
        server.kill()
        server.join(10)
        admin.close()

    figures = verdict(args, samples)
    figures.update(
        runs=total_runs,
        statuses=dict(statuses),
        events=events,
        dead_letters=errors,
        events_per_busy_s=round(events / busy_s, 1) if busy_s else 0.0,
        real_s=round(time.monotonic() - wall, 1),
        warehouse_mb=round(warehouse_mb(warehouse), 1),
        parquet_mb=round(folder_mb(parquet_root), 1),
        simulated_hours=args.hours,
        interval_s=args.interval_s,
        spikes_ms=[lo, hi],
        simulator_process_rss_mb=round(simulator_rss, 1),
    )
    warehouse.dispose()
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0 if figures["ok"] and not failures else 1


def verdict(args: argparse.Namespace, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Baseline: the median of ``window`` runs after ``warmup``; final: the median of the last ``window`` runs."""
    if len(samples) < args.warmup + 2 * args.window:
        return {"ok": True, "growth_checked": False, "note": "too few runs to judge growth after warm-up"}
    base = samples[args.warmup : args.warmup + args.window]
    last = samples[-args.window :]
    rss_growth = statistics.median(s["rss_mb"] for s in last) - statistics.median(s["rss_mb"] for s in base)
    fd_growth = statistics.median(s["fds"] for s in last) - statistics.median(s["fds"] for s in base)
    ok = rss_growth <= args.rss_tolerance_mb and fd_growth <= args.fd_tolerance
    return {
        "ok": ok,
        "growth_checked": True,
        "rss_mb_baseline": round(statistics.median(s["rss_mb"] for s in base), 1),
        "rss_mb_final": round(statistics.median(s["rss_mb"] for s in last), 1),
        "rss_growth_mb": round(rss_growth, 1),
        "rss_max_mb": round(max(s["rss_mb"] for s in samples), 1),
        "fds_baseline": statistics.median(s["fds"] for s in base),
        "fds_final": statistics.median(s["fds"] for s in last),
        "fd_growth": fd_growth,
        "tolerances": {"rss_mb": args.rss_tolerance_mb, "fds": args.fd_tolerance},
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
