"""Compaction: DuckDB queries over one day of ``chat_event`` before and after ``compact_partition``.

A day of per-run files as the pipeline writes them (``ParquetStore.write_fact``: one file per run, 1,440 a day),
``SIZE`` events each: chats of 5 events per run that live 20 runs, so event ids grow per chat across files.
Three queries as an analyst would run them over the contract's glob (``hive_partitioning``, ``union_by_name``):
``count(*)``, events per ``event_type``, and the last event id of every chat. Each is timed on a fresh DuckDB
connection (no cached footers), best of ``--repeat``; then the day is compacted (timed) and the queries rerun.

    python bench/compaction.py SIZE [--files 1440 --repeat 3 --keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import load, table, tmpdir

from pipelines.storage.compaction import compact_partition
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.schema import ARROW_SCHEMAS, TIMESTAMP_TYPE

DAY = date(2026, 11, 26)
EVENTS_PER_CHAT_RUN = 5
CHAT_RUNS = 20
TYPES = np.array(["line", "line", "line", "state", "participant", "a2a"])

QUERIES = {
    "count(*)": "SELECT count(*) FROM {src}",
    "per event_type": "SELECT event_type, count(*) FROM {src} GROUP BY ALL",
    "per chat max(event_id)": "SELECT chat_id, max(event_id) FROM {src} GROUP BY ALL",
}


def run_file(minute: int, size: int, rng: np.random.Generator) -> pa.Table:
    """One run's events: ``size`` events from ``size / 5`` chats, 5 new events each."""
    chats = max(1, size // EVENTS_PER_CHAT_RUN)
    generation, age = divmod(minute, CHAT_RUNS)
    chat_ids = np.repeat([f"{generation * chats + j:09d}" for j in range(chats)], EVENTS_PER_CHAT_RUN)[:size]
    event_ids = age * EVENTS_PER_CHAT_RUN + np.tile(np.arange(EVENTS_PER_CHAT_RUN), chats)[:size]
    at = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=minute)
    snapshot_id = f"{at:%Y%m%dT%H%M%S}Z-{minute:08x}"
    n = len(chat_ids)
    lengths = rng.integers(5, 200, size=n)
    types = TYPES[rng.integers(0, len(TYPES), size=n)]
    event_times = [at - timedelta(seconds=int(s)) for s in rng.integers(0, 60, size=n)]
    raw = [f'{{"@id":"{e}","@type":"{t}","text":{ln}}}' for e, t, ln in zip(event_ids, types, lengths, strict=True)]
    return pa.table(
        {
            "chat_id": chat_ids,
            "event_id": event_ids.astype(np.int64),
            "snapshot_id": [snapshot_id] * n,
            "event_type": types,
            "event_time": pa.array(event_times, type=TIMESTAMP_TYPE),
            "source": np.where(rng.random(n) < 0.5, "visitor", "agent"),
            "by": np.where(rng.random(n) < 0.5, "visitor", "agent"),
            "state": pa.nulls(n, pa.string()),
            "text": pa.nulls(n, pa.string()),
            "text_length": lengths,
            "raw_json": raw,
            "ingested_at": pa.array([at] * n, type=TIMESTAMP_TYPE),
        },
        schema=ARROW_SCHEMAS["chat_event"],
    )


def folder_stats(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.iterdir() if p.name.endswith(".parquet")]
    return len(files), sum(p.stat().st_size for p in files)


def time_queries(root: str, repeat: int) -> dict[str, float]:
    src = f"read_parquet('{root}/chat_event/*/*.parquet', hive_partitioning = true, union_by_name = true)"
    best: dict[str, float] = {}
    for name, query in QUERIES.items():
        for _ in range(repeat):
            con = duckdb.connect()
            started = time.perf_counter()
            con.execute(query.format(src=src)).fetchall()
            elapsed = time.perf_counter() - started
            con.close()
            best[name] = min(best.get(name, elapsed), elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size", type=int, help="events per per-run file")
    parser.add_argument("--files", type=int, default=1440, help="per-run files in the day (runs)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="build the day in this folder and keep it")
    args = parser.parse_args()

    root = args.keep or tmpdir("bench-compaction-")
    store = ParquetStore(root)
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    for minute in range(args.files):
        rows = run_file(minute, args.size, rng)
        store.write_fact("chat_event", rows.column("snapshot_id")[0].as_py(), DAY, rows)
    build_s = time.perf_counter() - started
    folder = Path(root) / "chat_event" / f"date={DAY.isoformat()}"
    print(f"built {args.files:,} files x {args.size:,} events in {build_s:.1f} s under {root} ({load()})")

    files_before, bytes_before = folder_stats(folder)
    before = time_queries(root, args.repeat)
    started = time.perf_counter()
    result = compact_partition(store, "chat_event", DAY)
    compact_s = time.perf_counter() - started
    files_after, bytes_after = folder_stats(folder)
    after = time_queries(root, args.repeat)

    print(f"compaction: {result.status}, {result.rows:,} rows verified, swap by {result.swap}, {compact_s:.2f} s")
    headers = ["chat_event, one day", "files", "MB", *(f"{name} s" for name in QUERIES)]
    rows = [
        ["per-run files", f"{files_before:,}", f"{bytes_before / 1e6:.1f}", *(f"{before[q]:.3f}" for q in QUERIES)],
        ["compacted", f"{files_after:,}", f"{bytes_after / 1e6:.1f}", *(f"{after[q]:.3f}" for q in QUERIES)],
        ["before / after", f"{files_before / files_after:.0f}x", f"{bytes_before / bytes_after:.1f}x",
         *(f"{before[q] / after[q]:.1f}x" for q in QUERIES)],
    ]  # fmt: skip
    print(table(headers, rows))
    print(load())
    if not args.keep:
        shutil.rmtree(root)
    else:
        print(f"kept {os.path.abspath(root)}")


if __name__ == "__main__":
    main()
