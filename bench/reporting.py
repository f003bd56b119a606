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
Offline (untracked, the API's quirk) and consistent with ``state_started_at`` otherwise. SQLite's query plans are
printed to show which index serves the day.

Two paths are timed side by side, on the same data:
- ``snapshots (view)``: ``from_snapshots=True``, the view ``agent_state_interval`` over the day's snapshots;
- ``store``: the persisted intervals (``pipelines.reporting.interval_store``): on SQLite the tables
  ``agent_state_interval_store`` + ``agent_state_open`` (built here from the snapshots once: the build time is
  printed), on Parquet the day's ``agent_state_interval/date=.../part.parquet`` (written from the warehouse, as the
  reporting asset does). The store's per-run cost is measured by advancing it with ``--advance-runs`` further runs
  of every agent (the last minute's states, 5% of the agents changing), each in the SQLite warehouse, rolled back
  afterwards so that the data stay as built.

    python bench/reporting.py [AGENTS] [--minutes 1440 --repeat 3 --keep DIR --explain --advance-runs 20]
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


def query_only(source: str, stored: bool = False) -> tuple[float, float]:
    """The SQL ``daily_time_in_state`` runs, compiled outside the timing, on an already open connection: (wall s,
    CPU s of this process, every DuckDB thread included). ``stored``: the store path's SQL."""
    import duckdb

    from pipelines.reporting import daily
    from pipelines.reporting.views import connect

    view = "agent_time_in_state_daily"
    if stored and not source.startswith("sqlite"):
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        partition = daily.interval_partition(source, DAY)
        sql = daily.stored_sql(view, "duckdb", DAY, daily.partition_sql(partition))
        t, cpu = time.perf_counter(), time.process_time()
        con.sql(sql).to_arrow_table()
        took = time.perf_counter() - t, time.process_time() - cpu
        con.close()
        return took
    with connect(source, daily.partition_days(DAY)) as (dialect, run):
        sql = daily.stored_sql(view, dialect, DAY) if stored else daily.day_sql(view, dialect, DAY)
        t, cpu = time.perf_counter(), time.process_time()
        run(sql)
        return time.perf_counter() - t, time.process_time() - cpu


def build_store(path: str, rebuild: bool) -> str:
    """Migrate the SQLite warehouse (0004 adds the store's tables) and build the store from its snapshots, unless
    built already (and not ``rebuild``); returns what happened, with the time."""
    from pipelines.reporting import interval_store
    from pipelines.storage.warehouse import Warehouse

    warehouse = Warehouse(f"sqlite:///{path}")
    try:
        warehouse.migrate()
        with warehouse.begin() as conn:
            built = interval_store.is_built(conn)
        if built and not rebuild:
            return "store: reused (built before)"
        t, cpu = time.perf_counter(), time.process_time()
        with warehouse.begin() as conn:
            agents = interval_store.rebuild(conn)
        took = time.perf_counter() - t
        with warehouse.begin() as conn:
            conn.exec_driver_sql("ANALYZE agent_state_interval_store")
            conn.exec_driver_sql("ANALYZE agent_state_open")
        rows = _count(warehouse, "agent_state_interval_store")
        return (f"store built from the snapshots in {took:.1f} s ({time.process_time() - cpu:.1f} s CPU): "
                f"{rows:,} closed intervals + {agents:,} open [{load()}]")
    finally:
        warehouse.dispose()


def _count(warehouse, table: str) -> int:
    with warehouse.engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()


def write_interval_partitions(sqlite_path: str, roots: list[str]) -> str:
    """The day's intervals from the warehouse's store, written under each Parquet root as the asset writes them."""
    from pipelines.reporting import daily
    from pipelines.storage.parquet import ParquetStore

    t = time.perf_counter()
    intervals = daily.intervals(f"sqlite:///{sqlite_path}", DAY)
    read = time.perf_counter() - t
    for root in roots:
        ParquetStore(root).write_partition(daily.INTERVAL_PARTITION, DAY, intervals,
                                           daily.SCHEMAS["agent_state_interval"])
    return (f"the day's {intervals.num_rows:,} intervals read from the store in {read:.2f} s and written to "
            f"{len(roots)} Parquet root(s) in {time.perf_counter() - t - read:.2f} s")


def advance_runs(path: str, agents: int, minutes: int, runs: int, seed: int = 11) -> str:
    """``apply_run`` for ``runs`` new runs of every agent after the last minute (5% of the agents change state each
    run), each run's rows inserted untimed first; all in one transaction, rolled back at the end."""
    from pipelines.reporting import interval_store
    from pipelines.storage.warehouse import Warehouse

    rng = np.random.default_rng(seed)
    at_us, states, starts = generate(agents, minutes)
    state, since, at = states[-1].copy(), starts[-1].copy(), int(at_us[-1])
    warehouse = Warehouse(f"sqlite:///{path}")
    took, closed = [], 0
    try:
        with warehouse.engine.connect() as conn:
            transaction = conn.begin()
            for _ in range(runs):
                at += 60_000_000
                change = rng.random(agents) < 0.05
                state = np.where(change, rng.choice([1, 2, 3, 4], size=agents), state)
                since = np.where(change, at - rng.integers(0, 60_000_000, size=agents), since)
                snaps = snapshot_rows(np.array([at]), state[None, :], since[None, :])
                run = run_rows(np.array([at]))
                snapshot_id = run["snapshot_id"][0].as_py()
                warehouse.upsert(conn, "snapshot_run", run)
                warehouse.upsert(conn, "agent_state_snapshot", snaps)
                t = time.perf_counter()
                advance = interval_store.apply_run(conn, snapshot_id)
                took.append(time.perf_counter() - t)
                closed += advance.rows_closed
                assert advance.agents_advanced == agents, advance
            transaction.rollback()
    finally:
        warehouse.dispose()
    ms = sorted(1000 * x for x in took)
    return (f"store advance per run of {agents:,} agents (apply_run, SQLite, inside the run's transaction): "
            f"median {ms[len(ms) // 2]:.0f} ms, min {ms[0]:.0f}, max {ms[-1]:.0f} over {runs} runs "
            f"({closed / runs:.0f} intervals closed per run) [{load()}]")


def explain_duckdb(root: str) -> str:
    from pipelines.reporting import daily
    from pipelines.reporting.views import connect

    with connect(root, daily.partition_days(DAY)) as (dialect, run):
        plan = run("EXPLAIN ANALYZE " + daily.day_sql("agent_time_in_state_daily", dialect, DAY))
    return plan.column(plan.num_columns - 1)[0].as_py()


def sqlite_plan(path: str, stored: bool = False) -> list[str]:
    from pipelines.reporting import daily

    view = "agent_time_in_state_daily"
    sql = daily.stored_sql(view, "sqlite", DAY) if stored else daily.day_sql(view, "sqlite", DAY)
    db = sqlite3.connect(path)
    rows = db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
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
    parser.add_argument("--skip", default="", help="comma-separated rows to skip: runs,compacted,sqlite (each "
                        "path), or runs-snapshots,compacted-snapshots,sqlite-snapshots (only the view path)")
    parser.add_argument("--rebuild-store", action="store_true", help="build the store again even if built")
    parser.add_argument("--advance-runs", type=int, default=20, help="runs to time the store's advance with")
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
    skip = set(filter(None, args.skip.split(",")))
    sqlite_path = f"{folder}/warehouse.db"
    print(build_store(sqlite_path, args.rebuild_store), flush=True)
    if args.advance_runs:
        print(advance_runs(sqlite_path, args.agents, args.minutes, args.advance_runs), flush=True)
    print(write_interval_partitions(sqlite_path, [f"{folder}/parquet-runs", f"{folder}/parquet-compacted"]),
          flush=True)
    backends = [
        ("DuckDB, Parquet 1 file per run", f"{folder}/parquet-runs", "runs", 1.0),
        ("DuckDB, Parquet compacted day", f"{folder}/parquet-compacted", "compacted", 1.0),
        ("SQLite", f"sqlite:///{sqlite_path}", "sqlite", 10.0),
    ]
    results = []
    for name, source, key, goal in backends:
        if key in skip:
            continue
        reference = None
        for path in ("snapshots (view)", "store"):
            stored = path == "store"
            if not stored and f"{key}-snapshots" in skip:
                continue
            if key == "sqlite":
                files = "-"
            elif stored:
                files = "1"
            else:
                files = f"{len(os.listdir(f'{source}/agent_state_snapshot/date={DAY}')):,}"
            first, public, query = None, [], []
            for _ in range(args.sqlite_repeat if key == "sqlite" and not stored else args.repeat):
                t = time.perf_counter()
                out = daily_time_in_state(source, DAY, from_snapshots=not stored)
                public.append(time.perf_counter() - t)
                first = public[0] if first is None else first
                query.append(query_only(source, stored))
            same = "" if reference is None else ("yes" if out.equals(reference) else "NO")
            reference = out if reference is None else reference
            best = min(public[1:] or public)
            wall, cpu = min(query)
            results.append([name, path, files, f"{out.num_rows:,}", f"{first:.2f}", f"{best:.2f}", f"{wall:.2f}",
                            f"{cpu:.2f}", f"< {goal:.0f} s", "met" if best < goal else "NOT met", same,
                            load().removeprefix("load average ")])
            print(" | ".join(results[-1]), flush=True)
    print()
    print(table(["agent_time_in_state_daily, one day", "path", "files", "rows out", "1st call s", "call s",
                 "query s", "query CPU s", "goal", "", "= view", "load average"], results))
    print("(1st call: the first daily_time_in_state of that path and backend, including transpiling the views with "
          "sqlglot the first time the process uses a query shape); call: best later call; query: the SQL alone on "
          "an open connection, wall and CPU "
          f"(all threads); best of {args.repeat}, SQLite snapshots {args.sqlite_repeat}; = view: the store path's "
          "table equals the snapshot path's)")
    if "sqlite" not in skip:
        for stored in (False, True):
            print(f"\nSQLite EXPLAIN QUERY PLAN of the day's query ({'store' if stored else 'snapshots'}):")
            for line in sqlite_plan(sqlite_path, stored):
                print("  ", line)
    if args.explain:
        print("\nDuckDB EXPLAIN ANALYZE (compacted layout):")
        print(explain_duckdb(f"{folder}/parquet-compacted"))


if __name__ == "__main__":
    main()
