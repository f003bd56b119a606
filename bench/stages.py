"""Where the chat ingest spends its time, stage by stage, without HTTP: CPU microseconds per event.

Payloads are rendered by the simulator's own code in-process (as served), then run through our stages exactly as
``SnapshotRunner.commit_chat_batch`` does: decode, parse, normalize, upsert into SQLite (one transaction per batch of
100 chats, with the cursor updates), and the chat_event Parquet file. CPU time (``process_time``) per stage, so
the figures hold on a loaded machine better than wall time. The cyclic GC is paused, as in the chat step.

    python bench/stages.py [CHATS] [--events 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import AHEAD_S, BUSY, load, table, tmpdir


def payloads(chats: int, events: int) -> list[tuple[str, bytes]]:
    from pipelines.liveperson.simulator import render
    from pipelines.liveperson.simulator.world import World, WorldConfig

    world = World(WorldConfig(seed=7, agents=5000, events_per_chat=events, concurrent_chats=max(chats, 500)))
    at = BUSY + timedelta(seconds=AHEAD_S)
    chosen = []
    for chat_id in world.chats_between(BUSY - timedelta(minutes=10), BUSY):
        if len(world.chat_events(chat_id, at)) == events:
            chosen.append(chat_id)
        if len(chosen) == chats:
            break
    url = "http://127.0.0.1:1/api/account/1/agentSession/x"
    return [(c, render.encode(render.chat_payload(url, c, world.chat_events(c, at), 0, world.chat_info(c, at)),
                              render.JSON)) for c in chosen]


def one_pass(bodies: list[tuple[str, bytes]]) -> dict[str, float]:
    """One pass of every stage over ``bodies`` into a fresh warehouse and Parquet store; CPU seconds per stage."""
    import pyarrow as pa

    from pipelines import normalize
    from pipelines.liveperson.decode import decode_body
    from pipelines.liveperson.parse import parse_chat
    from pipelines.storage.parquet import ParquetStore
    from pipelines.storage.warehouse import Warehouse

    folder = tmpdir("bench-stages-")
    warehouse = Warehouse(f"sqlite:///{folder}/w.db")
    warehouse.migrate()
    store = ParquetStore(f"{folder}/parquet")
    now = datetime.now(UTC)
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "chat_session", [{"chat_id": c, "next_from": 0, "absent_runs": 0} for c, _ in bodies],
                         update=False)
    cost = dict.fromkeys(("decode", "parse", "normalize", "upsert+commit", "parquet"), 0.0)
    tables = []
    for start in range(0, len(bodies), 100):
        t = time.process_time()
        decoded = [(c, decode_body(b, "application/json", endpoint="chat", status=200)) for c, b in
                   bodies[start:start + 100]]
        cost["decode"] += time.process_time() - t
        t = time.process_time()
        resources = [parse_chat(p, chat_id=c) for c, p in decoded]
        cost["parse"] += time.process_time() - t
        t = time.process_time()
        events = normalize.chat_event_table("s", now, [e for r in resources for e in r.events], False)
        cost["normalize"] += time.process_time() - t
        t = time.process_time()
        with warehouse.begin() as conn:
            warehouse.upsert(conn, "chat_event", events, update=False)
            warehouse.update_by_key(conn, "chat_session", [
                {"chat_id": r.chat_id, "next_from": r.events[-1].event_id + 1, "last_event_id": r.events[-1].event_id}
                for r in resources
            ])
        cost["upsert+commit"] += time.process_time() - t
        tables.append(events)
    t = time.process_time()
    store.write_fact("chat_event", "s", now.date(), pa.concat_tables(tables))
    cost["parquet"] += time.process_time() - t
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("chats", nargs="?", type=int, default=200)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="each stage's best of this many passes")
    args = parser.parse_args()
    from pipelines.ingest import cyclic_gc_paused

    bodies = payloads(args.chats, args.events)
    n_events = sum(len(orjson.loads(b)["chat"]["events"]["event"]) for _, b in bodies)
    best: dict[str, float] = {}
    one_pass(bodies[:2])  # first-use costs (Arrow kernels, statement compilation) are not per event
    for _ in range(args.repeat):
        with cyclic_gc_paused():  # as in the chat step
            cost = one_pass(bodies)
        best = {k: min(v, best.get(k, v)) for k, v in cost.items()}
    cost = best
    total = sum(cost.values())
    rows = [[name, f"{1e6 * c / n_events:.2f}", f"{100 * c / total:.0f}%"] for name, c in cost.items()]
    rows.append(["total CPU", f"{1e6 * total / n_events:.2f}", f"{n_events / total:,.0f} events/CPU-s"])
    print(f"{len(bodies)} chats, {n_events:,} events; best of {args.repeat}; [{load()}]")
    print(table(["stage", "CPU us/event", "share"], rows))


if __name__ == "__main__":
    main()
