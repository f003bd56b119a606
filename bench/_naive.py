"""The reference: the plain pandas script anyone would write first (json + DataFrame + to_sql + pyarrow.parquet).

Same chats, same columns as our ``chat_event`` (raw JSON with the text replaced by its length, text length), the
cursor of each chat stored too; one thread, one transaction. Favourable to it: ``to_sql`` creates its own table
without a primary key, so SQLite maintains no index while it inserts.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import requests


def naive_ingest(http: requests.Session, urls: list[tuple[str, dict[str, str], str]], folder: str) -> int:
    rows: list[dict[str, Any]] = []
    cursors: list[tuple[str, int]] = []
    for chat_id, headers, url in urls:
        payload = json.loads(http.get(url, headers=headers).text)
        events = payload["chat"]["events"].get("event") or []
        if isinstance(events, dict):
            events = [events]
        for event in events:
            text = event.get("text")
            redacted = {k: (len(v) if k == "text" and isinstance(v, str) else v) for k, v in event.items()}
            rows.append({
                "chat_id": chat_id,
                "event_id": int(event["@id"]),
                "event_type": event["@type"],
                "event_time": event.get("time"),
                "source": event.get("source"),
                "by": event.get("by"),
                "state": event.get("state"),
                "text_length": len(text) if isinstance(text, str) else None,
                "raw_json": json.dumps(redacted),
            })
        if events:
            cursors.append((chat_id, int(events[-1]["@id"]) + 1))
    frame = pd.DataFrame(rows)
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True, format="ISO8601")
    with sqlite3.connect(f"{folder}/naive.db") as db:
        frame.to_sql("chat_event", db, if_exists="append", index=False)
        db.execute("CREATE TABLE IF NOT EXISTS chat_cursor (chat_id TEXT PRIMARY KEY, next_from INTEGER)")
        db.executemany("INSERT OR REPLACE INTO chat_cursor VALUES (?, ?)", cursors)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), f"{folder}/naive_chat_event.parquet")
    return len(frame)
