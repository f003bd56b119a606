"""Issue 7, the lever for goals 2 and 3: what storing a batch of chat events in SQLite costs per row, today's way
(``executemany`` of Python tuples, the rows already converted) against binding the rows in C from the Arrow batch
(ADBC's SQLite driver: ``adbc_ingest`` into a temporary table, then ``INSERT OR IGNORE ... SELECT`` into
``chat_event``), each batch in ONE transaction, into the same growing WAL database (the ``chat_event`` table and
index of migration 0001, ``synchronous=NORMAL`` as the warehouse sets it). Not wired into the pipeline, and it must
not be in the pipeline's process: ADBC's driver brings its own copy of SQLite, whose locks a stdlib connection to
the same file drops when it closes (``bench/sqlite_two_libraries.py``). Needs the bench extra (``adbc-driver-sqlite``).

    python bench/sqlite_ingest.py [BATCHES] [--rows 20000 --repeat 2]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import load, table

COLUMNS = (
    'chat_id TEXT NOT NULL, event_id BIGINT NOT NULL, snapshot_id TEXT, event_type TEXT, event_time TIMESTAMP, '
    'source TEXT, "by" TEXT, state TEXT, text TEXT, text_length INTEGER, raw_json TEXT, ingested_at TIMESTAMP, '
    "PRIMARY KEY (chat_id, event_id)"
)
NAMES = ("chat_id", "event_id", "snapshot_id", "event_type", "event_time", "source", "by", "state", "text",
         "text_length", "raw_json", "ingested_at")
INSERT = f"INSERT OR IGNORE INTO chat_event VALUES ({', '.join('?' * len(NAMES))})"


def batch_rows(k: int, rows: int, events_per_chat: int = 1000) -> list[tuple]:
    """One batch as the chat step stores it: whole chats of 1,000 events, redacted raw JSON of ~130 bytes."""
    chats = [f"{random.randint(10**8, 10**9)}-{k}-{c}" for c in range(rows // events_per_chat + 1)]
    return [
        (chats[i // events_per_chat], i % events_per_chat, "20261127T101010Z-abcdef12", "line",
         f"2026-11-27 10:{i % 60:02d}:{i % 60:02d}.{i % 1000:03d}000", "visitor", "visitor", None, None, 42,
         f'{{"@id":"{i % events_per_chat}","@type":"line","time":"2026-11-27T10:00:00.000+00:00",'
         '"textType":"plain","text":42,"by":"visitor","source":"visitor"}', "2026-11-27 10:10:10.000000")
        for i in range(rows)
    ]


def new_database(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"CREATE TABLE chat_event ({COLUMNS})")
    con.execute("CREATE INDEX ix_chat_event_snapshot ON chat_event (snapshot_id)")
    con.commit()
    con.close()


def store_with_executemany(path: str, batches: list[list[tuple]]) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=NORMAL")
    started = time.process_time()
    for rows in batches:
        con.execute("BEGIN IMMEDIATE")
        con.executemany(INSERT, rows)
        con.execute("COMMIT")
    spent = time.process_time() - started
    con.close()
    return spent


def store_with_adbc(path: str, batches: list[pa.Table]) -> float:
    import adbc_driver_sqlite.dbapi as adbc

    conn = adbc.connect(path, autocommit=True)
    cur = conn.cursor()
    cur.execute("PRAGMA synchronous=NORMAL")
    started = time.process_time()
    for arrow_batch in batches:
        cur.execute("BEGIN IMMEDIATE")
        cur.adbc_ingest("incoming", arrow_batch, mode="replace", temporary=True)
        cur.execute("INSERT OR IGNORE INTO chat_event SELECT * FROM temp.incoming")
        cur.execute("COMMIT")
    spent = time.process_time() - started
    cur.close()
    conn.close()
    return spent


def contents(path: str) -> tuple:
    with sqlite3.connect(path) as con:
        return con.execute(
            "SELECT count(*), sum(event_id), sum(length(raw_json)), count(text), min(typeof(event_id)), "
            "min(typeof(text_length)), max(event_time) FROM chat_event"
        ).fetchone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("batches", nargs="?", type=int, default=15)
    parser.add_argument("--rows", type=int, default=20_000, help="rows per batch (the chat step's CHAT_COMMIT_EVENTS)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    tuples = [batch_rows(k, args.rows) for k in range(args.batches)]
    arrow = [pa.table({name: [row[i] for row in rows] for i, name in enumerate(NAMES)}) for rows in tuples]
    n = args.rows * args.batches
    folder = tempfile.mkdtemp(prefix="bench-sqlite-ingest-")
    results: dict[str, list[float]] = {"executemany": [], "adbc": []}
    for _ in range(args.repeat):
        for name, store, data in (("executemany", store_with_executemany, tuples), ("adbc", store_with_adbc, arrow)):
            path = f"{folder}/{name}.db"
            new_database(path)
            results[name].append(store(path, data))
    same = contents(f"{folder}/executemany.db") == contents(f"{folder}/adbc.db")
    best = {name: min(spent) for name, spent in results.items()}
    print(f"{args.batches} batches x {args.rows:,} chat_event rows into one growing WAL database, best of "
          f"{args.repeat}; [{load()}]")
    print(table(
        ["store a batch (one transaction each)", "CPU s", "us/row", "vs executemany"],
        [
            ["executemany of Python tuples (rows ready)", f"{best['executemany']:.2f}",
             f"{1e6 * best['executemany'] / n:.2f}", "1.00"],
            ["ADBC ingest from Arrow + INSERT OR IGNORE SELECT", f"{best['adbc']:.2f}",
             f"{1e6 * best['adbc'] / n:.2f}", f"{best['adbc'] / best['executemany']:.2f}"],
        ],
    ))
    print(f"same rows in both databases: {same}")


if __name__ == "__main__":
    main()
