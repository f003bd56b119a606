"""Issue 7: reporting. ``agent_time_in_state_daily`` for one day over a day of minute snapshots of 5,000 agents
(7.2 M ``agent_state_snapshot`` rows), generated directly (not via HTTP) in the contract's layout: one Parquet file
per snapshot under ``date=`` and the same rows in a migrated SQLite warehouse (with its indexes). Goal: under 1 s
on DuckDB over Parquet, within 10 s on SQLite, through ``pipelines.reporting.daily.daily_time_in_state``.

States follow a simple random walk per agent (a change about every 20 minutes; Offline before and after a shift);
``elapsed_in_state_ms`` and ``state_started_at`` are consistent with it. The query plan on SQLite is printed, to
show which index the window ``PARTITION BY agent_id ORDER BY snapshot_at`` uses.

    python bench/reporting.py [AGENTS] [--minutes 1440 --repeat 3 --keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import load, table, tmpdir

DAY = date(2026, 11, 26)


def generate(agents: int, minutes: int, seed: int = 7) -> tuple[list[str], list[datetime], np.ndarray, np.ndarray]:
    """(snapshot ids, snapshot times, states [minutes x agents], state start in epoch us [minutes x agents])."""
    rng = np.random.default_rng(seed)
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    times = [start + timedelta(minutes=m, seconds=5) for m in range(minutes)]
    ids = [f"{t:%Y%m%dT%H%M%SZ}-{m:08x}" for m, t in enumerate(times)]
    at_us = np.array([int(t.timestamp()) * 1_000_000 for t in times], dtype=np.int64)
    shift_start = rng.integers(0, max(minutes - 480, 1), size=agents)
    states = np.empty((minutes, agents), dtype=np.int64)
    starts = np.empty((minutes, agents), dtype=np.int64)
    current = np.full(agents, 4)  # Offline
    since = np.full(agents, at_us[0] - 3_600_000_000)
    for m in range(minutes):
        on_shift = (m >= shift_start) & (m < shift_start + 480)
        change = on_shift & (rng.random(agents) < 0.05)
        new = np.where(change, rng.choice([1, 2, 3], size=agents), current)  # Away, Online, Occupied
        new = np.where(on_shift, np.where(current == 4, 2, new), 4)
        moved = new != current
        since = np.where(moved, at_us[m] - rng.integers(0, 60_000_000, size=agents), since)
        current = new
        states[m], starts[m] = current, since
    return ids, times, states, starts


NAMES = {1: "Away", 2: "Online", 3: "Occupied", 4: "Offline"}


def snapshot_table(sid: str, at: datetime, agent_ids: pa.Array, states: np.ndarray, starts: np.ndarray) -> pa.Table:
    from pipelines.storage.schema import ARROW_SCHEMAS

    n = len(states)
    at_us = int(at.timestamp() * 1_000_000)
    elapsed = np.where(states == 4, 0, (at_us - starts) // 1000)
    codes = pa.array(states)
    return pa.table({
        "snapshot_id": pa.array([sid] * n),
        "snapshot_at": pa.array(np.full(n, at_us), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "agent_id": agent_ids,
        "chat_state_code": codes,
        "chat_state": pa.array([NAMES[int(s)] for s in states]),
        "voice_state_code": pa.array(np.full(n, 4)),
        "voice_state": pa.array(["Offline"] * n),
        "max_chats": pa.array(np.full(n, 3)),
        "chats": pa.array(np.where(states == 3, 3, 0)),
        "elapsed_in_state_ms": pa.array(elapsed),
        "state_started_at": pa.array(at_us - elapsed * 1000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "agent_group_id": pa.array(["1"] * n),
    }).cast(ARROW_SCHEMAS["agent_state_snapshot"])


def run_table(sids: list[str], times: list[datetime]) -> pa.Table:
    from pipelines.storage.schema import ARROW_SCHEMAS

    schema = ARROW_SCHEMAS["snapshot_run"]
    n = len(sids)
    columns = {
        "snapshot_id": sids, "started_at": times, "finished_at": times, "status": ["ok"] * n,
        "source": ["bench"] * n, "account_id": ["1"] * n, "interval_s": [60] * n, "agents": [0] * n,
        "chats": [0] * n, "events": [0] * n, "errors": [0] * n, "parquet_written_at": times,
    }
    return pa.table({f.name: pa.array(columns[f.name], f.type) for f in schema}, schema=schema)


def build(folder: str, agents: int, minutes: int) -> tuple[str, str, int]:
    from pipelines.storage.parquet import ParquetStore
    from pipelines.storage.warehouse import Warehouse, _bind_values

    sids, times, states, starts = generate(agents, minutes)
    agent_ids = pa.array([str(1_000_000 + a) for a in range(agents)])
    store = ParquetStore(f"{folder}/parquet")
    url = f"sqlite:///{folder}/warehouse.db"
    warehouse = Warehouse(url)
    warehouse.migrate()
    warehouse.dispose()
    db = sqlite3.connect(f"{folder}/warehouse.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("BEGIN")
    runs = run_table(sids, times)
    db.executemany(f"INSERT INTO snapshot_run VALUES ({','.join('?' * runs.num_columns)})",
                   list(zip(*(_bind_values(runs.column(c), "sqlite") for c in runs.column_names), strict=True)))
    rows = 0
    for m, (sid, at) in enumerate(zip(sids, times, strict=True)):
        snap = snapshot_table(sid, at, agent_ids, states[m], starts[m])
        store.write_fact("agent_state_snapshot", sid, DAY, snap)
        store.write_fact("snapshot_run", sid, DAY, runs.slice(m, 1))
        values = [_bind_values(snap.column(c), "sqlite") for c in snap.column_names]
        placeholders = ",".join("?" * len(values))
        db.executemany(f"INSERT INTO agent_state_snapshot VALUES ({placeholders})", zip(*values, strict=True))
        rows += snap.num_rows
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    return url, f"{folder}/parquet", rows


def query_only(source: str) -> float:
    """The SQL ``daily_time_in_state`` runs, compiled outside the timing, run on an already open connection."""
    from pipelines.reporting import daily
    from pipelines.reporting.views import compile_view, connect

    days = [DAY + timedelta(days=k) for k in (-1, 0, 1)]
    with connect(source, days) as (dialect, run):
        tables = daily._day_tables(dialect, DAY, daily.MARGIN)
        sql = (f"SELECT * FROM ({compile_view('agent_time_in_state_daily', dialect, inline=True, tables=tables)}) "
               f"AS v WHERE day = {daily._date_literal(dialect, DAY)}")
        t = time.perf_counter()
        run(sql)
        return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("agents", nargs="?", type=int, default=5000)
    parser.add_argument("--minutes", type=int, default=1440)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="build into (or reuse) this folder")
    args = parser.parse_args()
    from pipelines.reporting.daily import daily_time_in_state

    folder = args.keep or tmpdir("bench-reporting-")
    marker = Path(folder, f".built-{args.agents}-{args.minutes}")
    t0 = time.perf_counter()
    if marker.exists():
        url, root, rows = f"sqlite:///{folder}/warehouse.db", f"{folder}/parquet", args.agents * args.minutes
    else:
        url, root, rows = build(folder, args.agents, args.minutes)
        marker.touch()
    print(f"{rows:,} agent_state_snapshot rows ({args.agents:,} agents x {args.minutes:,} minutes) ready in "
          f"{time.perf_counter() - t0:.0f} s; {len(os.listdir(f'{root}/agent_state_snapshot/date={DAY}')):,} "
          f"Parquet files")
    results = []
    for name, source in (("DuckDB over Parquet", root), ("SQLite", url)):
        goal = 1.0 if name.startswith("DuckDB") else 10.0
        repeat = args.repeat if name.startswith("DuckDB") else max(1, args.repeat - 1)
        public, query = [], []
        for _ in range(repeat):
            t = time.perf_counter()
            out = daily_time_in_state(source, DAY)
            public.append(time.perf_counter() - t)
            query.append(query_only(source))
        results.append([name, f"{out.num_rows:,}", f"{min(public):.2f}", f"{min(query):.2f}", f"< {goal:.0f} s",
                        "met" if min(public) < goal else "query met" if min(query) < goal else "NOT met"])
    print(f"[{load()}]")
    print(table(["agent_time_in_state_daily, one day", "rows out", "daily_time_in_state s", "query alone s", "goal",
                 ""], results))
    print("(daily_time_in_state: the public function, which transpiles the view with sqlglot on every call; "
          "query alone: the same SQL compiled beforehand, run on an open connection; best of the repeats)")
    db = sqlite3.connect(f"{folder}/warehouse.db")
    plan = db.execute("EXPLAIN QUERY PLAN SELECT agent_id, snapshot_at FROM agent_state_snapshot "
                      "WHERE snapshot_at >= '2026-11-25 21:00:00' AND snapshot_at < '2026-11-27 03:00:00' "
                      "ORDER BY agent_id, snapshot_at").fetchall()
    print("\nSQLite plan of the window's input (PARTITION BY agent_id ORDER BY snapshot_at):")
    for row in plan:
        print("  ", row[-1])


if __name__ == "__main__":
    main()
