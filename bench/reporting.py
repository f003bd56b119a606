"""Issue 7: reporting. ``agent_time_in_state_daily`` for one day over a day of minute snapshots of 5,000 agents
(7.2 M ``agent_state_snapshot`` rows), generated directly (not via HTTP). Goal: under 1 s on DuckDB over Parquet,
within 10 s on SQLite, through ``pipelines.reporting.daily.daily_time_in_state``.

The rows are built column-wise with numpy/Arrow and written three ways:
- ``parquet-runs/``: the contract's uncompacted layout, one file per fact table per run (1,440 files a day);
- ``parquet-compacted/``: the same rows with each closed day compacted into one file per fact table;
- ``warehouse.db``: a migrated SQLite warehouse, bulk-loaded with ``executemany`` of tuples in one transaction, its
  secondary indexes dropped before the load and created after it (then ``ANALYZE``).

States follow a simple random walk per agent (a change about every 20 minutes during an 8-hour shift, Offline
before and after it; codes as the API: 1 Offline, 2 Online, 3 Occupied, 4 Away); ``elapsed_in_state_ms`` is 0 for
Offline (untracked, the API's quirk) and consistent with ``state_started_at`` otherwise. SQLite's query plan is
printed to show which index serves the day's window.

    python bench/reporting.py [AGENTS] [--minutes 1440 --repeat 3 --keep DIR --explain]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import load, table, tmpdir

DAY = date(2026, 11, 26)
NAMES = {1: "Offline", 2: "Online", 3: "Occupied", 4: "Away"}
OFFLINE = 1


def generate(agents: int, minutes: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(snapshot times in epoch us [minutes], states [minutes x agents], state starts in epoch us [minutes x
    agents])."""
    rng = np.random.default_rng(seed)
    midnight = int(datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC).timestamp()) * 1_000_000
    at_us = midnight + (np.arange(minutes, dtype=np.int64) * 60 + 5) * 1_000_000
    shift_start = rng.integers(0, max(minutes - 480, 1), size=agents)
    states = np.empty((minutes, agents), dtype=np.int64)
    starts = np.empty((minutes, agents), dtype=np.int64)
    current = np.full(agents, OFFLINE)
    since = np.full(agents, at_us[0] - 3_600_000_000)
    for m in range(minutes):
        on_shift = (m >= shift_start) & (m < shift_start + 480)
        change = on_shift & (rng.random(agents) < 0.05)
        new = np.where(change, rng.choice([2, 3, 4], size=agents), current)  # Online, Occupied, Away
        new = np.where(on_shift, np.where(current == OFFLINE, 2, new), OFFLINE)
        moved = new != current
        since = np.where(moved, at_us[m] - rng.integers(0, 60_000_000, size=agents), since)
        current = new
        states[m], starts[m] = current, since
    return at_us, states, starts


def snapshot_ids(at_us: np.ndarray) -> list[str]:
    return [f"{datetime.fromtimestamp(int(t) // 1_000_000, UTC):%Y%m%dT%H%M%SZ}-{m:08x}" for m, t in enumerate(at_us)]


def snapshot_rows(at_us: np.ndarray, states: np.ndarray, starts: np.ndarray) -> pa.Table:
    """Every agent_state_snapshot row, run after run (row m * agents + a), in the contract's Arrow schema."""
    from pipelines.storage.schema import ARROW_SCHEMAS

    minutes, agents = states.shape
    n = minutes * agents
    run_of_row = np.repeat(np.arange(minutes, dtype=np.int32), agents)
    agent_of_row = np.tile(np.arange(agents, dtype=np.int32), minutes)
    codes = states.ravel()
    at = np.repeat(at_us, agents)
    elapsed_ms = np.where(codes == OFFLINE, 0, (at - starts.ravel()) // 1000)
    names = pa.array([NAMES.get(c, f"unknown:{c}") for c in range(5)])

    def decoded(indices: np.ndarray, dictionary: pa.Array) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(indices), dictionary).cast(pa.string())

    ts = pa.timestamp("us", tz="UTC")
    return pa.table({
        "snapshot_id": decoded(run_of_row, pa.array(snapshot_ids(at_us))),
        "snapshot_at": pa.array(at, pa.int64()).cast(ts),
        "agent_id": decoded(agent_of_row, pa.array([str(1_000_000 + a) for a in range(agents)])),
        "chat_state_code": pa.array(codes),
        "chat_state": decoded(codes.astype(np.int32), names),
        "voice_state_code": pa.array(np.full(n, 1, dtype=np.int64)),
        "voice_state": decoded(np.full(n, 1, dtype=np.int32), names),
        "max_chats": pa.array(np.full(n, 3, dtype=np.int64)),
        "chats": pa.array(np.where(codes == 3, 3, np.where(codes == 2, 1, 0))),
        "elapsed_in_state_ms": pa.array(elapsed_ms),
        "state_started_at": pa.array(at - elapsed_ms * 1000, pa.int64()).cast(ts),
        "agent_group_id": decoded(agent_of_row % 10, pa.array([str(g) for g in range(10)])),
    }).cast(ARROW_SCHEMAS["agent_state_snapshot"])


def run_rows(at_us: np.ndarray) -> pa.Table:
    from pipelines.storage.schema import ARROW_SCHEMAS

    schema = ARROW_SCHEMAS["snapshot_run"]
    n = len(at_us)
    ts = pa.array(at_us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    columns = {
        "snapshot_id": pa.array(snapshot_ids(at_us)), "started_at": ts, "finished_at": ts,
        "status": pa.array(["ok"] * n), "source": pa.array(["bench"] * n), "account_id": pa.array(["1"] * n),
        "interval_s": pa.array([60] * n), "agents": pa.array([0] * n), "chats": pa.array([0] * n),
        "events": pa.array([0] * n), "errors": pa.array([0] * n), "parquet_written_at": ts,
    }
    return pa.table({f.name: columns[f.name].cast(f.type) for f in schema}, schema=schema)


def write_parquet(root: str, snaps: pa.Table, runs: pa.Table, agents: int, compacted: bool) -> int:
    """The contract's fact layout ``<table>/date=YYYY-MM-DD/<snapshot_id>.parquet`` (one file per run), or each
    day compacted into one file per table. Returns the number of agent_state_snapshot files of the day."""
    files = 0
    for name, rows in (("agent_state_snapshot", snaps), ("snapshot_run", runs)):
        folder = Path(root, name, f"date={DAY.isoformat()}")
        folder.mkdir(parents=True, exist_ok=True)
        if compacted:
            pq.write_table(rows, folder / "compacted.parquet")
            files = 1
            continue
        per_run = agents if name == "agent_state_snapshot" else 1
        ids = runs["snapshot_id"].to_pylist()
        for m, snapshot_id in enumerate(ids):
            pq.write_table(rows.slice(m * per_run, per_run), folder / f"{snapshot_id}.parquet")
        files = len(ids)
    return files


def load_sqlite(path: str, snaps: pa.Table, runs: pa.Table, agents: int) -> None:
    """Migrate, drop the secondary indexes, insert every row with raw ``executemany`` of tuples in one
    transaction, then create the indexes again and ``ANALYZE``."""
    from pipelines.storage.warehouse import Warehouse

    warehouse = Warehouse(f"sqlite:///{path}")
    warehouse.migrate()
    warehouse.dispose()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -1000000")
    indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                         "AND tbl_name IN ('agent_state_snapshot', 'snapshot_run')").fetchall()
    db.execute("BEGIN")
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")

    def python_columns(t: pa.Table) -> list[list]:
        out = []
        for column in t.columns:
            if pa.types.is_timestamp(column.type):  # SQLAlchemy's text form: 'YYYY-MM-DD HH:MM:SS.ffffff'
                column = column.cast(pa.timestamp("us")).cast(pa.string())
            out.append(column.to_pylist())
        return out

    db.executemany(f"INSERT INTO snapshot_run VALUES ({','.join('?' * runs.num_columns)})",
                   zip(*python_columns(runs), strict=True))
    insert = f"INSERT INTO agent_state_snapshot VALUES ({','.join('?' * snaps.num_columns)})"
    step = agents * 60  # an hour of runs at a time: bounded memory for the Python values
    for offset in range(0, snaps.num_rows, step):
        db.executemany(insert, zip(*python_columns(snaps.slice(offset, step)), strict=True))
    for _, sql in indexes:
        db.execute(sql)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def build(folder: str, agents: int, minutes: int) -> dict[str, float]:
    """Generate and write every layout; returns the seconds each step took."""
    took = {}
    t = time.perf_counter()
    at_us, states, starts = generate(agents, minutes)
    snaps, runs = snapshot_rows(at_us, states, starts), run_rows(at_us)
    took["generate (numpy + Arrow)"] = time.perf_counter() - t
    for layout, compacted in (("runs", False), ("compacted", True)):
        t = time.perf_counter()
        write_parquet(f"{folder}/parquet-{layout}", snaps, runs, agents, compacted)
        took[f"Parquet, {layout}"] = time.perf_counter() - t
    t = time.perf_counter()
    load_sqlite(f"{folder}/warehouse.db", snaps, runs, agents)
    took["SQLite load + indexes + ANALYZE"] = time.perf_counter() - t
    return took


def query_only(source: str) -> tuple[float, float]:
    """The SQL ``daily_time_in_state`` runs, compiled outside the timing, on an already open connection: (wall s,
    CPU s of this process, every DuckDB thread included)."""
    from pipelines.reporting import daily
    from pipelines.reporting.views import connect

    with connect(source, daily.partition_days(DAY)) as (dialect, run):
        sql = daily.day_sql("agent_time_in_state_daily", dialect, DAY)
        t, cpu = time.perf_counter(), time.process_time()
        run(sql)
        return time.perf_counter() - t, time.process_time() - cpu


def explain_duckdb(root: str) -> str:
    from pipelines.reporting import daily
    from pipelines.reporting.views import connect

    with connect(root, daily.partition_days(DAY)) as (dialect, run):
        plan = run("EXPLAIN ANALYZE " + daily.day_sql("agent_time_in_state_daily", dialect, DAY))
    return plan.column(plan.num_columns - 1)[0].as_py()


def sqlite_plan(path: str) -> list[str]:
    from pipelines.reporting import daily

    db = sqlite3.connect(path)
    rows = db.execute("EXPLAIN QUERY PLAN " + daily.day_sql("agent_time_in_state_daily", "sqlite", DAY)).fetchall()
    db.close()
    return [row[-1] for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("agents", nargs="?", type=int, default=5000)
    parser.add_argument("--minutes", type=int, default=1440)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sqlite-repeat", type=int, default=1)
    parser.add_argument("--keep", help="build into (or reuse) this folder")
    parser.add_argument("--explain", action="store_true", help="print DuckDB's EXPLAIN ANALYZE (compacted layout)")
    parser.add_argument("--skip", default="", help="comma-separated backends to skip: runs,compacted,sqlite")
    args = parser.parse_args()
    from pipelines.reporting.daily import daily_time_in_state

    folder = args.keep or tmpdir("bench-reporting-")
    marker = Path(folder, f".built-{args.agents}-{args.minutes}")
    rows = args.agents * args.minutes
    if marker.exists():
        print(f"{rows:,} agent_state_snapshot rows ({args.agents:,} agents x {args.minutes:,} minutes): reusing "
              f"{folder}")
    else:
        t0 = time.perf_counter()
        took = build(folder, args.agents, args.minutes)
        marker.touch()
        print(f"{rows:,} agent_state_snapshot rows ({args.agents:,} agents x {args.minutes:,} minutes) generated "
              f"in {time.perf_counter() - t0:.0f} s [{load()}]: "
              + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in took.items()))
    backends = [
        ("DuckDB, Parquet 1 file per run", f"{folder}/parquet-runs", "runs", 1.0),
        ("DuckDB, Parquet compacted day", f"{folder}/parquet-compacted", "compacted", 1.0),
        ("SQLite", f"sqlite:///{folder}/warehouse.db", "sqlite", 10.0),
    ]
    skip = set(filter(None, args.skip.split(",")))
    results = []
    for name, source, key, goal in backends:
        if key in skip:
            continue
        files = (len(os.listdir(f"{source}/agent_state_snapshot/date={DAY}")) if key != "sqlite" else "-")
        first, public, query = None, [], []
        for _ in range(args.sqlite_repeat if key == "sqlite" else args.repeat):
            t = time.perf_counter()
            out = daily_time_in_state(source, DAY)
            public.append(time.perf_counter() - t)
            first = public[0] if first is None else first
            query.append(query_only(source))
        best = min(public[1:] or public)
        wall, cpu = min(query)
        results.append([name, f"{files:,}" if files != "-" else files, f"{out.num_rows:,}", f"{first:.2f}",
                        f"{best:.2f}", f"{wall:.2f}", f"{cpu:.2f}", f"< {goal:.0f} s",
                        "met" if best < goal else "NOT met",
                        load().removeprefix("load average ")])
    print(table(["agent_time_in_state_daily, one day", "files", "rows out", "1st call s", "call s", "query s",
                 "query CPU s", "goal", "", "load average"], results))
    print("(1st call: daily_time_in_state in a fresh process, including transpiling the view with sqlglot; call: "
          "best later call (the SQL is cached per process); query: the SQL alone on an open connection, wall and CPU "
          f"(all threads); best of {args.repeat}, SQLite {args.sqlite_repeat})")
    if "sqlite" not in skip:
        print("\nSQLite EXPLAIN QUERY PLAN of the day's query:")
        for line in sqlite_plan(f"{folder}/warehouse.db"):
            print("  ", line)
    if args.explain:
        print("\nDuckDB EXPLAIN ANALYZE (compacted layout):")
        print(explain_duckdb(f"{folder}/parquet-compacted"))


if __name__ == "__main__":
    main()
