"""Issue 3: the peer. The same chats and events ingested by dlt (its ``rest_api`` source) into SQLite (the
``sqlalchemy`` destination) and into Parquet (the ``filesystem`` destination, ``loader_file_format="parquet"``),
beside ours and the naive pandas script, all in one run against one warm simulator in its own process.

dlt is set up as its documentation suggests: one ``rest_api`` resource per chat (each chat belongs to one agent
session, so each carries that session's bearer and cookie as endpoint headers), all into one ``chat_event`` table,
``write_disposition="append"`` (cheaper for dlt than ``merge``; ours upserts). dlt's ``JSONLinkPaginator`` stops
only when the next link is missing, and this API always gives one, so ``StopOnEmptyPage`` also stops on a page
without events (one extra, empty request per chat: dlt has no cursor to keep between runs otherwise).
Needs the bench extra: ``uv pip install -e '.[bench]'``.

    python bench/peer_dlt.py [CHATS] [--events 1000 --agents 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

from _harness import (
    SimProcess,
    chat_urls,
    floor_pass,
    fmt,
    load,
    plain_http,
    raw_sessions,
    table,
    timed,
    tmpdir,
)
from _naive import naive_ingest
from ingest_e2e import run_ours


def dlt_source(urls: list[tuple[str, dict[str, str], str]]) -> Any:
    from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator
    from dlt.sources.rest_api import rest_api_source

    class StopOnEmptyPage(JSONLinkPaginator):
        """The chat's ``next`` link (always present), but no further page once a page brought no events."""

        def update_state(self, response: Any, data: list[Any] | None = None) -> None:
            super().update_state(response, data)
            if not data:
                self._next_reference = None

    base = urls[0][2].split("/api/account/")[0]
    resources = []
    for chat_id, headers, url in urls:
        resources.append({
            "name": f"chat_{chat_id}",
            "table_name": "chat_event",
            "write_disposition": "append",
            "endpoint": {
                "path": url[len(base):],
                "headers": dict(headers),
                "data_selector": "chat.events.event",
                "paginator": StopOnEmptyPage(next_url_path="chat.link[3].'@href'"),
            },
        })
    return rest_api_source({"client": {"base_url": base}, "resources": resources})


def run_dlt(urls: list[tuple[str, dict[str, str], str]], destination: str, folder: str) -> int:
    import logging

    import dlt

    logging.getLogger("dlt").setLevel(logging.ERROR)  # one "data is None" warning per chat's last, empty page
    if destination == "sqlite":
        dest = dlt.destinations.sqlalchemy(credentials=f"sqlite:///{folder}/dlt.db")
        fmt_kw: dict[str, Any] = {}
    else:
        dest = dlt.destinations.filesystem(bucket_url=f"file://{folder}/parquet")
        fmt_kw = {"loader_file_format": "parquet"}
    pipeline = dlt.pipeline(pipeline_name=f"bench_{destination}", destination=dest, dataset_name="liveperson",
                            pipelines_dir=f"{folder}/pipelines")
    info = pipeline.run(dlt_source(urls), **fmt_kw)
    info.raise_on_failed_jobs()
    return int(pipeline.last_trace.last_normalize_info.row_counts.get("chat_event", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chats", nargs="?", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=5000)
    args = parser.parse_args()
    print(f"[{load()}] {args.agents} agents, {args.chats} chats x {args.events} events")
    with SimProcess(args.agents, args.chats, args.events) as sim:
        state_dir = f"{tmpdir('bench-state-')}/state"
        run_ours(sim, state_dir, None)  # warm: logins and the simulator's cache for our sessions
        http = plain_http()
        sessions = raw_sessions(sim, http)
        urls = chat_urls(sessions)
        floor_pass(http, urls)  # warm for the plain sessions (dlt and the naive script use them)
        results = []
        for name, run in (
            ("dlt rest_api -> sqlalchemy (SQLite)", lambda f: run_dlt(urls, "sqlite", f)),
            ("dlt rest_api -> filesystem (Parquet)", lambda f: run_dlt(urls, "parquet", f)),
            ("naive pandas script (SQLite + Parquet)", lambda f: naive_ingest(http, urls, f)),
        ):
            with timed(sim) as t:
                rows = run(tmpdir("bench-peer-"))
            results.append((name, rows, t))
        events, t, _ = run_ours(sim, state_dir, None)
        results.insert(0, ("ours: SnapshotRunner.chat_events (SQLite + Parquet)", events, t))
    ours = results[0][2].wall
    rows = [[name, f"{n:,}", fmt(n / t.wall), f"{t.wall:.2f}", t.cpu_share, t.sim_share, f"{t.wall / ours:.2f}"]
            for name, n, t in results]
    print(f"\n[{load()}]")
    print(table(["", "rows", "events/s", "seconds", "our CPU", "sim CPU", "time / ours"], rows))
    fastest_dlt = min(results[1][2].wall, results[2][2].wall)
    both_dlt = results[1][2].wall + results[2][2].wall
    print(f"\nours vs dlt's fastest single destination: {fastest_dlt / ours:.2f}x (goal >= 4x); vs dlt into both: "
          f"{both_dlt / ours:.2f}x; vs naive: {results[3][2].wall / ours:.2f}x (goal >= 2x)")
    counts = {n for _, n, _ in results}
    print("same row counts everywhere" if len(counts) == 1 else f"ROW COUNTS DIFFER: {counts}")


if __name__ == "__main__":
    main()
