"""Bad input: whatever the API (or a proxy, or a bug) sends, a run gets rows or a dead letter, never a crash.

Two layers are driven with generated data: the normalizer alone (records with arbitrary field values -> Arrow
tables), and the whole path a body takes in a run (bytes -> ``decode_body`` -> parser -> normalizer -> warehouse
upsert) for payloads that follow the documented shapes with any node missing, null, of the wrong type, single
instead of a list, or extreme (huge strings, NUL, any Unicode, numbers far outside int64). The only exception
allowed out of the path is ``PayloadError``, which the run dead-letters; its body must then survive the
dead-letter redaction too.

Lone surrogates cannot reach the normalizer: both decoders refuse them (proved below), so the generated strings
are any Unicode text except surrogates.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import normalize
from pipelines.liveperson.decode import decode_body
from pipelines.liveperson.errors import PayloadError
from pipelines.liveperson.parse import (
    parse_availability,
    parse_available_agents,
    parse_available_slots,
    parse_chat,
    parse_chat_sessions,
)
from pipelines.liveperson.records import AgentRecord, ChatEvent, SkillRef
from pipelines.storage.warehouse import Warehouse

AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
INT64 = 2**63
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values chosen to break things: numbers past 32 and 64 bits (as numbers and as strings), exponents, NUL, huge.
EXTREME_TEXT = [
    "",
    "0",
    "-1",
    "1",
    "5",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999",
    "1e308",
    "1e400",
    "-0",
    "nan",
    "inf",
    " 7 ",
    "2026-11-27T02:00:00+02:00",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+14:00",
    "1795755180123",
    "\x00",
    "a\x00b",
    "'; DROP TABLE chat_event; --",
    "../../etc/passwd",
    "\u202e\ufeff",
    "x" * 20_000,
]
EXTREME_INTS = st.sampled_from([0, -1, 2**31, -(2**31) - 1, INT64 - 1, INT64, -INT64 - 1, 2**64, 10**30])
leaves = (
    st.sampled_from(EXTREME_TEXT)
    | st.none()
    | st.booleans()
    | EXTREME_INTS
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


def shaped(template: Any) -> st.SearchStrategy[Any]:
    """Values following ``template``'s shape, any node of which may be missing, single, or an arbitrary value."""
    if isinstance(template, dict):
        follows = st.fixed_dictionaries({}, optional={key: shaped(value) for key, value in template.items()})
    elif isinstance(template, list):
        item = shaped(template[0])
        follows = st.lists(item, max_size=3) | item
    else:
        follows = template
    return follows | json_values


STATE_CODES = st.sampled_from(["1", "2", "3", "4", "0", "5", "99", "Online", "Busy", 2, 3.0, "4294967297"]) | leaves
HREF = (
    st.sampled_from(
        [
            "https://h/chat/C1?from=3",
            "https://h/chat/C%2F..%2Fx?from=1",
            "https://h/chat/../..",
            "http://[bad",
            "/",
            "https://h/chat/C1?from=99999999999999999999",
        ]
    )
    | leaves
)
LINK = {
    "@href": HREF,
    "@rel": st.sampled_from(["next", "chat-session", "visit-id"]) | leaves,
    "href": HREF,
    "rel": st.sampled_from(["next", "chat-session"]) | leaves,
}
AGENT = dict.fromkeys(
    [
        "@id",
        "@maxChats",
        "chats",
        "elapsedTimeInState",
        "userName",
        "nickname",
        "email",
        "privilegeGroup",
        "agentGroupId",
        "agentGroupName",
    ],
    leaves,
) | {
    "@chatState": STATE_CODES,
    "@voiceState": STATE_CODES,
    "skills": {"skill": [leaves]},
    "skillsInfo": {"skillInfo": [{"id": leaves, "name": leaves}]},
}
EVENT = dict.fromkeys(
    ["@id", "id", "time", "text", "textType", "by", "source", "state", "systemMessageId", "subType"], leaves
) | {"@type": st.sampled_from(["line", "state", "url", "a2a-transfer", "never-seen"]) | leaves}
INFO = dict.fromkeys(
    [
        "state",
        "chatSessionKey",
        "agentName",
        "agentId",
        "startTime",
        "lastUpdate",
        "chatTimeout",
        "visitorId",
        "visitorName",
        "rtSessionId",
        "skillId",
        "visitId",
    ],
    leaves,
)

SHAPES = {
    "availableAgents": {"availableAgents": {"link": [LINK], "agents": {"agent": [AGENT]}}},
    "chat": {"chat": {"link": [LINK], "events": {"link": [LINK], "event": [EVENT]}, "info": INFO}},
    "chatSessions": {
        "chatSessions": {"chatSession": [{"link": [LINK], "chatSessionKey": leaves, "startTime": leaves}]}
    },
    "availableSlots": {"availableSlots": leaves},
    "availability": {"availability": {"chat": leaves, "voice": leaves}},
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    warehouse = Warehouse(f"sqlite:///{tmp_path_factory.mktemp('bad-input') / 'warehouse.db'}")
    warehouse.migrate()
    yield warehouse
    warehouse.dispose()


def store(warehouse: Warehouse, endpoint: str, payload: Any, store_text: bool) -> int:
    """What a run does with a decoded payload of ``endpoint``: parse, normalize, upsert. Returns rows stored."""
    stored = 0
    with warehouse.begin() as conn:
        if endpoint == "availableAgents":
            agents = parse_available_agents(payload).agents
            for table, rows in (
                ("agent_state_snapshot", normalize.agent_state_table("s1", AT, agents)),
                ("agent", normalize.agent_dimension_table(agents, AT, [a.agent_id for a in agents[:1]])),
                ("skill", normalize.skill_table(agents, AT)),
            ):
                stored += warehouse.upsert(conn, table, rows) or rows.num_rows
            pairs = normalize.agent_skill_pairs(agents)
            rows = [{"agent_id": a, "skill_id": s, "valid_from": AT, "valid_to": None} for a, s in sorted(pairs)]
            if rows:
                warehouse.upsert(conn, "agent_skill", rows, update=False)
        elif endpoint == "chat":
            chat = parse_chat(payload, chat_id="C1")
            events = normalize.chat_event_table("s1", AT, chat.events, store_text)
            warehouse.upsert(conn, "chat_event", events, update=False)
            stored += events.num_rows
            info = chat.info
            row = {
                "chat_id": "C1",
                "first_seen_at": AT,
                "last_seen_at": AT,
                "next_from": chat.next_from or 0,
                "absent_runs": 0,
            }
            if info is not None:
                row.update(
                    state=info.state,
                    agent_id=info.agent_id,
                    agent_name=info.agent_name,
                    visitor_id=info.visitor_id,
                    visit_id=info.visit_id,
                    start_time=info.start_time,
                    info_json=normalize.chat_info_json(info.raw, store_text),
                )
            warehouse.upsert(conn, "chat_session", [row])
        elif endpoint == "chatSessions":
            refs = parse_chat_sessions(payload)
            rows = [
                {
                    "chat_id": r.chat_id,
                    "chat_session_key": r.chat_session_key,
                    "start_time": r.start_time,
                    "first_seen_at": AT,
                    "last_seen_at": AT,
                    "next_from": 0,
                    "absent_runs": 0,
                }
                for r in refs
            ]
            if rows:
                warehouse.upsert(conn, "chat_session", rows, update=False)
            stored += len(rows)
        elif endpoint == "availableSlots":
            rows = normalize.chat_slots_table("s1", AT, parse_available_slots(payload))
            warehouse.upsert(conn, "chat_slots_snapshot", rows)
            stored += 1
        else:
            availability = parse_availability(payload)
            rows = normalize.session_availability_table(
                "s1", AT, [{"agent_id": "A1", "chat": availability.chat, "voice": availability.voice}]
            )
            warehouse.upsert(conn, "session_availability_snapshot", rows)
            stored += 1
    return stored


@pytest.mark.parametrize("endpoint", sorted(SHAPES))
def test_any_body_in_a_documented_shape_is_stored_or_dead_lettered_never_a_crash(
    endpoint: str, warehouse: Warehouse
) -> None:
    @FEW
    @given(shaped(SHAPES[endpoint]), st.booleans())
    def check(value: Any, store_text: bool) -> None:
        body = json.dumps(value).encode()  # Python's JSON: ints of any size, as a server could send them
        try:
            store(warehouse, endpoint, decode_body(body, "application/json", endpoint=endpoint, status=200), store_text)
        except PayloadError as error:  # the run's dead letter: its body must go through redaction too
            assert isinstance(normalize.redact_payload_text(error.body, store_text), str)

    check()


@pytest.mark.parametrize(
    "body",
    [
        b'{"availableAgents": {"agents": {"agent": {"@id": "\\ud800"}}}}',
        b"<availableAgents><x>&#xD800;</x></availableAgents>",
    ],
    ids=["json", "xml"],
)
def test_a_lone_surrogate_in_a_body_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_body(body, None, endpoint="availableAgents", status=200)


# --- the normalizer alone: records with arbitrary field values become rows ---

# What the decoders can put in a record's ``raw``: orjson reads integers in [-2**63, 2**64) as ints, others as floats.
decoded_values = json_values.map(lambda value: orjson.loads(json.dumps(value)))

texts = st.text(max_size=30) | st.sampled_from(EXTREME_TEXT) | st.none()
int64s = st.integers(min_value=-INT64, max_value=INT64 - 1) | st.none()
int32s = st.integers(min_value=-(2**31), max_value=2**31 - 1) | st.none()
ids = st.text(min_size=1, max_size=30) | st.sampled_from([t for t in EXTREME_TEXT if t])
agents = st.builds(
    AgentRecord,
    agent_id=ids,
    chat_state_code=int32s,
    chat_state=texts,
    voice_state_code=int32s,
    voice_state=texts,
    max_chats=int32s,
    chats=int32s,
    elapsed_in_state_ms=int64s,
    user_name=texts,
    nickname=texts,
    email=texts,
    privilege_group=texts,
    agent_group_id=texts,
    agent_group_name=texts,
    skills=st.lists(st.builds(SkillRef, skill_id=ids, skill_name=texts), max_size=3).map(tuple),
    raw=st.dictionaries(st.text(max_size=5), decoded_values, max_size=4),
)
times = st.datetimes(timezones=st.just(UTC)) | st.none()
events = st.builds(
    ChatEvent,
    chat_id=ids,
    event_id=st.integers(min_value=-INT64, max_value=INT64 - 1),
    event_type=ids,
    event_time=times,
    source=texts,
    by=texts,
    state=texts,
    text=texts,
    text_type=texts,
    system_message_id=texts,
    raw=st.dictionaries(st.sampled_from(["text", "visitorName", "@id", "x"]), decoded_values, max_size=4),
)


@FEW
@given(st.lists(agents, max_size=5), st.datetimes(timezones=st.just(UTC)))
def test_any_agent_records_become_one_row_per_agent(records: list[AgentRecord], at: datetime) -> None:
    n = len({record.agent_id for record in records})
    assert normalize.agent_state_table("s1", at, records).num_rows == n
    assert normalize.agent_dimension_table(records, at, [r.agent_id for r in records[:1]]).num_rows == n
    normalize.skill_table(records, at)


@FEW
@given(st.lists(events, max_size=5), st.booleans())
def test_any_chat_events_become_one_row_per_event_and_text_only_when_asked(
    records: list[ChatEvent], store_text: bool
) -> None:
    table = normalize.chat_event_table("s1", AT, records, store_text)
    assert table.num_rows == len({(r.chat_id, r.event_id) for r in records})
    if not store_text:
        assert table.column("text").null_count == table.num_rows


@FEW
@given(decoded_values, st.booleans())
def test_chat_info_and_dead_letter_redaction_take_any_value(value: Any, store_text: bool) -> None:
    if isinstance(value, dict):
        normalize.chat_info_json(value, store_text)
    normalize.redact_payload_text(json.dumps(value), store_text)
    normalize.redact_payload_text(json.dumps(value).encode()[:-1], store_text)  # cut off, as truncation does


def test_a_dead_letter_body_that_is_not_utf8_is_redacted_to_text(tmp_path: Path) -> None:
    redacted = normalize.redact_payload_text(b'{"text": "caf\xe9 secret sauce', False)
    assert "secret sauce" not in redacted
