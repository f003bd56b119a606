"""Hostile values: ids that look like paths or SQL are data, never a path or a statement; huge bodies are refused.

Ids reach the warehouse as bound parameters and Parquet only as column values: files are named by snapshot ids,
dates and table names alone, each through ``safe_path_component``. NUL is the one character stored differently
(U+FFFD, as PostgreSQL text cannot hold it; see tests/storage/test_warehouse.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipelines import normalize
from pipelines.liveperson.errors import PayloadError
from pipelines.liveperson.parse import parse_available_agents, parse_available_slots, parse_chat
from pipelines.storage import schema
from pipelines.storage.parquet import ParquetStore, safe_path_component
from pipelines.storage.warehouse import Warehouse

AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
SNAPSHOT = "20261126T100000Z-0badc0de"
HOSTILE = [
    "../../etc/passwd",
    "a/b",
    "..",
    "/abs",
    "nul\x00inside",
    'it\'s "quoted" `too`',
    "'; DROP TABLE chat_event; --",
    "Robert'); DROP TABLE agent;--",
    "..\\..\\windows",
    "%2e%2e%2f",
    "\u202eevil\ufeff",
]


def stored_as(value: str) -> str:
    return value.replace("\x00", "\ufffd")


def hostile_payloads() -> tuple[dict[str, Any], dict[str, Any]]:
    agents = {
        "availableAgents": {
            "agents": {
                "agent": [
                    {"@id": value, "@chatState": "2", "userName": value, "email": value,
                     "skills": {"skill": value}, "skillsInfo": {"skillInfo": {"id": value, "name": value}}}
                    for value in HOSTILE
                ]
            }
        }
    }  # fmt: skip
    events = [{"@id": str(i), "@type": value, "by": value, "source": value} for i, value in enumerate(HOSTILE)]
    chat = {"chat": {"events": {"event": events}, "info": {"agentId": HOSTILE[0], "visitorId": HOSTILE[6]}}}
    return agents, chat


def test_hostile_ids_are_stored_verbatim_as_data_and_every_table_survives(warehouse_url: str, tmp_path: Path) -> None:
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    agents_payload, chat_payload = hostile_payloads()
    agents = parse_available_agents(agents_payload).agents
    parquet = ParquetStore(str(tmp_path / "parquet"))
    snapshot = normalize.agent_state_table(SNAPSHOT, AT, agents)
    try:
        with warehouse.begin() as conn:
            warehouse.upsert(conn, "agent_state_snapshot", snapshot)
            warehouse.upsert(conn, "agent", normalize.agent_dimension_table(agents, AT, [HOSTILE[0]]))
            warehouse.upsert(conn, "skill", normalize.skill_table(agents, AT))
            for chat_id in HOSTILE:
                chat = parse_chat(chat_payload, chat_id=chat_id)
                warehouse.upsert(conn, "chat_event", normalize.chat_event_table(SNAPSHOT, AT, chat.events, False))
                row = {"chat_id": chat_id, "first_seen_at": AT, "last_seen_at": AT, "agent_id": chat.info.agent_id,
                       "next_from": 0, "visitor_id": chat.info.visitor_id, "absent_runs": 0}  # fmt: skip
                warehouse.upsert(conn, "chat_session", [row])
        expected = sorted(stored_as(value) for value in HOSTILE)
        with warehouse.engine.connect() as conn:
            assert set(schema.TABLES) <= set(sa.inspect(conn).get_table_names())
            for table, column in (("agent", "agent_id"), ("agent", "user_name"), ("agent", "email"),
                                  ("skill", "skill_id"), ("skill", "skill_name"), ("chat_session", "chat_id"),
                                  ("agent_state_snapshot", "agent_id")):  # fmt: skip
                assert sorted(warehouse.read_table(conn, table).column(column).to_pylist()) == expected, column
            events = warehouse.read_table(conn, "chat_event")
            assert events.num_rows == len(HOSTILE) ** 2
            assert sorted(set(events.column("event_type").to_pylist())) == expected
            sessions = warehouse.read_table(conn, "chat_session")
            assert set(sessions.column("visitor_id").to_pylist()) == {HOSTILE[6]}
            # Parquet: the fact file is named by the snapshot id, dimensions are current.parquet; ids stay inside
            parquet.write_fact("agent_state_snapshot", SNAPSHOT, AT.date(), snapshot)
            for table in ("agent", "skill", "chat_session"):
                parquet.write_dimension(table, warehouse.read_table(conn, table))
        assert sorted(pq.read_table(tmp_path / "parquet/agent/current.parquet").column("agent_id").to_pylist()) == (
            expected
        )
        written = sorted(str(p.relative_to(tmp_path / "parquet")) for p in (tmp_path / "parquet").rglob("*"))
        assert written == [
            "agent", "agent/current.parquet", "agent_state_snapshot", "agent_state_snapshot/date=2026-11-26",
            f"agent_state_snapshot/date=2026-11-26/{SNAPSHOT}.parquet", "chat_session", "chat_session/current.parquet",
            "skill", "skill/current.parquet",
        ]  # fmt: skip
        assert {p.name for p in tmp_path.iterdir()} <= {
            "parquet",
            "warehouse.db",
            "warehouse.db-wal",
            "warehouse.db-shm",
        }
    finally:
        warehouse.dispose()


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_id_can_never_become_a_path_component(value: str) -> None:
    with pytest.raises(ValueError, match="unsafe path component"):
        safe_path_component(value)


EXTREME_NUMBERS = ["2147483647", "2147483648", "-2147483649", "4294967297", "9223372036854775807", "1e18"]


@pytest.mark.parametrize("number", EXTREME_NUMBERS)
def test_counts_and_state_codes_past_32_bits_are_stored_or_dead_lettered_on_both_dialects(
    warehouse_url: str, number: str
) -> None:
    """``max_chats``, ``chats``, state codes and slots are INTEGER columns (32 bits on PostgreSQL)."""
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    payload = {"availableAgents": {"agents": {"agent": {"@id": "1", "@chatState": number, "@voiceState": number,
                                                        "@maxChats": number, "chats": number,
                                                        "elapsedTimeInState": number}}}}  # fmt: skip
    try:
        agents = parse_available_agents(payload).agents
        with warehouse.begin() as conn:
            warehouse.upsert(conn, "agent_state_snapshot", normalize.agent_state_table(SNAPSHOT, AT, agents))
            try:
                slots = parse_available_slots({"availableSlots": number})
            except PayloadError:
                pass
            else:
                warehouse.upsert(conn, "chat_slots_snapshot", normalize.chat_slots_table(SNAPSHOT, AT, slots))
        with warehouse.engine.connect() as conn:
            assert warehouse.read_table(conn, "agent_state_snapshot").num_rows == 1
    finally:
        warehouse.dispose()


# --- a 500 MB body is refused while streaming, without being loaded ---

HUGE = 500 * 1024 * 1024


class _Streamer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sent: ClassVar[list[int]] = []

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        piece = b'{"availableAgents": "' + b"x" * (256 * 1024 - 22)
        frame = b"%x\r\n%s\r\n" % (len(piece), piece)
        sent = 0
        try:
            while sent < HUGE:
                self.wfile.write(frame)
                sent += len(piece)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            _Streamer.sent.append(sent)


@pytest.fixture
def streaming_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Streamer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/availableAgents"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


CLIENT = """
import json, sys, time
from pipelines.liveperson.config import ApiSettings
from pipelines.liveperson.decode import read_limited
from pipelines.liveperson.errors import ResponseTooLarge
from pipelines.liveperson.transport import make_http_session
def status_mb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024
settings = ApiSettings(account_id="1", logins=())
http = make_http_session(settings)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS: the imports' own peak must not hide the read's
before = status_mb("VmRSS")
started = time.monotonic()
with http.get(sys.argv[1], stream=True, timeout=30) as response:
    try:
        read_limited(response, settings.max_response_bytes, endpoint="availableAgents")
        outcome = "read whole"
    except ResponseTooLarge as error:
        outcome = f"ResponseTooLarge {len(error.body)}"
peak = status_mb("VmHWM")
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started, "limit": settings.max_response_bytes,
                  "rss_before_mb": before, "peak_rss_mb": peak, "peak_growth_mb": peak - before}))
"""


def test_a_500_mb_body_is_refused_at_the_default_limit_while_streaming_without_loading_it(
    streaming_server: str,
) -> None:
    """The client runs in its own process so that its peak RSS (VmHWM) is its own."""
    result = subprocess.run([sys.executable, "-c", CLIENT, streaming_server], capture_output=True, text=True,
                            timeout=120, check=True, cwd=Path(__file__).parents[2])  # fmt: skip
    figures = json.loads(result.stdout)
    print(f"500 MB body: {figures}")
    assert figures["outcome"] == "ResponseTooLarge 4096"
    assert figures["limit"] == 50 * 1024 * 1024
    assert figures["seconds"] < 30
    # the chunks up to the limit and nothing more: measured 50 MB of growth (100 MB before decode.py kept one
    # buffer instead of joining every chunk to cut the 4 KB head off)
    assert figures["peak_growth_mb"] < 1.5 * 50, "refusing the body cost more than the limit"
    for _ in range(500):
        if _Streamer.sent:
            break
        threading.Event().wait(0.01)
    assert _Streamer.sent and _Streamer.sent[-1] < HUGE / 2, "the server was made to send the whole body"
