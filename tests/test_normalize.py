"""Records -> Arrow tables: exactly the contract's columns and types, and no personal text unless asked for."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from pipelines import normalize
from pipelines.liveperson.parse import parse_available_agents, parse_chat
from pipelines.liveperson.records import AgentRecord, ChatEvent, SkillRef
from pipelines.storage.schema import ARROW_SCHEMAS

AT = datetime(2026, 11, 27, 4, 53, 0, tzinfo=UTC)
PAYLOADS = Path(__file__).parent / "liveperson" / "payloads"
SECRET_LINE = "My card is 4111&amp;1111, call me Jane"
VISITOR = "Jane Q. Visitor"


def _agent(agent_id: str, elapsed: int | None = 1000, skills: tuple[SkillRef, ...] = (), **kw: Any) -> AgentRecord:
    fields: dict[str, Any] = {
        "chat_state_code": 2, "chat_state": "Online", "voice_state_code": 1, "voice_state": "Offline",
        "max_chats": -1, "chats": None, "user_name": f"user{agent_id}", "nickname": None, "email": None,
        "privilege_group": None, "agent_group_id": "-1", "agent_group_name": None,
    }  # fmt: skip
    fields.update(kw)
    return AgentRecord(agent_id=agent_id, elapsed_in_state_ms=elapsed, skills=skills, raw={}, **fields)


def _line(event_id: int, text: str | None = SECRET_LINE, chat_id: str = "c1") -> ChatEvent:
    raw = {"@id": str(event_id), "@type": "line", "time": "2026-11-27T04:53:00Z", "text": text, "by": "visitor",
           "source": "visitor", "textType": "plain"}  # fmt: skip
    return ChatEvent(chat_id=chat_id, event_id=event_id, event_type="line", event_time=AT, source="visitor",
                     by="visitor", state=None, text=text, text_type="plain", system_message_id=None,
                     raw=raw)  # fmt: skip


def _all_values(table: pa.Table) -> str:
    return json.dumps(table.to_pylist(), default=str)


def test_agent_state_rows_have_exactly_the_schema_columns_and_types() -> None:
    table = normalize.agent_state_table("s1", AT, [_agent("1"), _agent("2", chats=3)])
    assert table.schema.equals(ARROW_SCHEMAS["agent_state_snapshot"])
    assert table.column("chats").to_pylist() == [None, 3]


def test_state_started_at_is_snapshot_time_minus_elapsed_and_zero_elapsed_stays_zero() -> None:
    table = normalize.agent_state_table("s1", AT, [_agent("1", 908445), _agent("2", 0), _agent("3", None)])
    assert table.column("state_started_at").to_pylist() == [AT - timedelta(milliseconds=908445), AT, None]
    assert table.column("elapsed_in_state_ms").to_pylist() == [908445, 0, None]


def test_an_agent_listed_twice_in_one_snapshot_gives_one_row() -> None:
    table = normalize.agent_state_table("s1", AT, [_agent("1", chat_state="Away"), _agent("1")])
    assert table.column("agent_id").to_pylist() == ["1"]
    assert table.column("chat_state").to_pylist() == ["Online"]


def test_naive_snapshot_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        normalize.agent_state_table("s1", AT.replace(tzinfo=None), [_agent("1")])


def test_published_example_agents_become_typed_rows_with_skills_and_memberships() -> None:
    page = parse_available_agents(orjson.loads((PAYLOADS / "available_agents.json").read_bytes()))
    states = normalize.agent_state_table("s1", AT, page.agents)
    agents = normalize.agent_dimension_table(page.agents, AT, {"25025413"})
    skills = normalize.skill_table(page.agents, AT)
    pairs = normalize.agent_skill_pairs(page.agents)
    assert states.schema.equals(ARROW_SCHEMAS["agent_state_snapshot"])
    assert agents.schema.equals(ARROW_SCHEMAS["agent"])
    assert skills.schema.equals(ARROW_SCHEMAS["skill"])
    monitored = dict(zip(agents.column("agent_id").to_pylist(), agents.column("monitored").to_pylist(), strict=True))
    assert monitored["25025413"] is True and monitored["26559413"] is False
    assert dict(zip(skills.column("skill_id").to_pylist(), skills.column("skill_name").to_pylist(), strict=True))[
        "25975313"
    ] == "Sales"
    assert ("26559413", "25975313") in pairs


def test_a_skill_named_by_one_agent_keeps_its_name_when_another_lists_only_its_id() -> None:
    agents = [_agent("1", skills=(SkillRef("9"),)), _agent("2", skills=(SkillRef("9", "Sales"), SkillRef("3")))]
    table = normalize.skill_table(agents, AT)
    assert table.to_pylist() == [
        {"skill_id": "3", "skill_name": None, "first_seen_at": AT, "last_seen_at": AT},
        {"skill_id": "9", "skill_name": "Sales", "first_seen_at": AT, "last_seen_at": AT},
    ]


def test_an_agent_without_skills_has_no_memberships() -> None:
    assert normalize.agent_skill_pairs([_agent("1")]) == set()


def test_session_availability_and_slots_rows_follow_their_schemas() -> None:
    availability = normalize.session_availability_table(
        "s1", AT, [{"agent_id": "7", "chat": "Online", "voice": None}]
    )
    slots = normalize.chat_slots_table("s1", AT, -1)
    assert availability.schema.equals(ARROW_SCHEMAS["session_availability_snapshot"])
    assert availability.to_pylist() == [{"snapshot_id": "s1", "snapshot_at": AT, "agent_id": "7", "chat": "Online",
                                         "voice": None}]  # fmt: skip
    assert slots.schema.equals(ARROW_SCHEMAS["chat_slots_snapshot"])
    assert slots.column("available_slots").to_pylist() == [-1]


def test_empty_inputs_give_empty_tables_with_the_full_schema() -> None:
    assert normalize.agent_state_table("s1", AT, []).schema.equals(ARROW_SCHEMAS["agent_state_snapshot"])
    assert normalize.chat_event_table("s1", AT, [], store_text=False).num_rows == 0
    assert normalize.session_availability_table("s1", AT, []).num_rows == 0


def test_chat_text_is_removed_by_default_and_its_length_kept() -> None:
    table = normalize.chat_event_table("s1", AT, [_line(1)], store_text=False)
    assert table.schema.equals(ARROW_SCHEMAS["chat_event"])
    (row,) = table.to_pylist()
    assert row["text"] is None
    assert row["text_length"] == len(SECRET_LINE)  # as served: "&amp;" counts five characters
    assert orjson.loads(row["raw_json"])["text"] == len(SECRET_LINE)
    assert "Jane" not in _all_values(table)


def test_chat_text_is_kept_verbatim_when_storing_text_is_enabled() -> None:
    (row,) = normalize.chat_event_table("s1", AT, [_line(1)], store_text=True).to_pylist()
    assert row["text"] == SECRET_LINE
    assert orjson.loads(row["raw_json"])["text"] == SECRET_LINE


def test_an_event_served_twice_appears_once() -> None:
    table = normalize.chat_event_table("s1", AT, [_line(1), _line(1), _line(2)], store_text=False)
    assert table.column("event_id").to_pylist() == [1, 2]


def test_events_without_text_have_null_length_and_unknown_fields_survive_in_raw_json() -> None:
    event = ChatEvent(chat_id="c1", event_id=5, event_type="a2a-transfer", event_time=None, source=None, by=None,
                      state=None, text=None, text_type=None, system_message_id=None,
                      raw={"id": 5, "type": "a2a-transfer", "targetSkill": "Billing"})  # fmt: skip
    (row,) = normalize.chat_event_table("s1", AT, [event], store_text=False).to_pylist()
    assert row["text_length"] is None
    assert orjson.loads(row["raw_json"]) == {"id": 5, "type": "a2a-transfer", "targetSkill": "Billing"}


def test_no_line_text_or_visitor_name_reaches_any_column_of_a_published_chat() -> None:
    payload = orjson.loads((PAYLOADS / "chat.json").read_bytes())
    payload["chat"]["info"]["visitorName"] = VISITOR
    chat = parse_chat(payload, chat_id="c1")
    texts = [event.text for event in chat.events if event.text]
    assert texts, "the example has line events"
    events = normalize.chat_event_table("s1", AT, chat.events, store_text=False)
    info_json = normalize.chat_info_json(chat.info.raw if chat.info else None, store_text=False)
    stored = _all_values(events) + (info_json or "")
    for personal in [*texts, VISITOR]:
        assert personal not in stored
    assert orjson.loads(info_json or "null")["visitorName"] == len(VISITOR)
    assert orjson.loads(info_json or "null")["skillName"] == "Sales"


def test_chat_info_keeps_the_visitor_name_only_when_storing_text() -> None:
    assert VISITOR in (normalize.chat_info_json({"visitorName": VISITOR}, store_text=True) or "")
    assert normalize.chat_info_json(None, store_text=False) is None


def test_dead_letters_from_chat_resources_carry_lengths_instead_of_text() -> None:
    body = orjson.dumps({"chat": {"events": {"event": [{"@id": "1", "text": SECRET_LINE}]},
                                  "info": {"visitorName": VISITOR}}}).decode()  # fmt: skip
    redacted = normalize.redact_payload_text(body, store_text=False)
    assert SECRET_LINE not in redacted and VISITOR not in redacted
    assert orjson.loads(redacted)["chat"]["info"]["visitorName"] == len(VISITOR)


def test_a_truncated_json_dead_letter_is_redacted_even_mid_string() -> None:
    body = '{"chat": {"events": {"event": [{"@id": "1", "text": "Hi, I am Jane \\"JJ\\""}, {"text": "call me at 555'
    redacted = normalize.redact_payload_text(body.encode(), store_text=False)
    assert "Jane" not in redacted and "555" not in redacted
    assert '"text": 18' in redacted


def test_an_xml_dead_letter_is_redacted_including_a_cut_off_element() -> None:
    body = ('<chat><events><event id="1" type="line"><text>Jane here</text></event></events>'
            '<info><visitorName>Jane Doe</visitorName><state>chatting</state></info><event><text>my addr')  # fmt: skip
    redacted = normalize.redact_payload_text(body, store_text=False)
    assert "Jane" not in redacted and "addr" not in redacted
    assert "<text>9</text>" in redacted and "<state>chatting</state>" in redacted


def test_dead_letters_keep_their_text_when_storing_text_is_enabled() -> None:
    body = f'{{"text": "{SECRET_LINE}"'
    assert normalize.redact_payload_text(body, store_text=True) == body


def test_decoded_payloads_are_redacted_structurally_including_xml_attribute_forms() -> None:
    decoded = {"event": [{"text": {"@type": "plain", "#text": "Jane"}}, {"text": 5551234}]}
    assert normalize.redact_payload_text(decoded, store_text=False) == {
        "event": [{"text": {"@type": 5, "#text": 4}}, {"text": 7}]
    }


def _event(event_id: int, raw: dict[str, Any]) -> ChatEvent:
    text = raw.get("text")
    return ChatEvent(chat_id="c1", event_id=event_id, event_type="line", event_time=AT, source=None, by=None,
                     state=None, text=text if isinstance(text, str) else None, text_type=None,
                     system_message_id=None, raw=raw)  # fmt: skip


RAW_EVENTS = [
    {"@id": "1", "@type": "line", "time": "2026-11-27T04:53:00Z", "text": SECRET_LINE, "by": "visitor"},
    {"@id": "2", "@type": "state", "state": "chatting"},
    {"@id": "3", "@type": "line", "text": "héllo ✓ \"quoted\" \\ back\nslash", "by": "Agent {x}"},  # brace in a value
    {"@id": "4", "@type": "line", "text": None, "visitorName": VISITOR},
    {"@id": "5", "@type": "line", "text": 5551234, "extra": 1.5, "flag": True},
    {"@id": "6", "@type": "line", "text": "[not a list]", "by": "},{"},
    {"@id": "7", "@type": "line", "text": {"@type": "plain", "#text": "Jane"}},  # nested (XML attribute form)
    {"@id": "8", "@type": "x", "items": [{"text": "Jane"}, {"a": 1}]},  # nested list of objects
    {"@id": "9", "@type": "line", "text": "\U0001f600 emoji"},
]


@pytest.mark.parametrize("store_text", [False, True])
@pytest.mark.parametrize("chosen", [[0, 1, 4, 8], [0, 2], [0, 5], [6, 0], [7, 1], list(range(9)), [1], [3]])
def test_raw_json_of_a_batch_is_each_events_own_serialization(store_text: bool, chosen: list[int]) -> None:
    """The batch is serialized in one call and cut apart: every value must be exactly the event's own
    ``orjson.dumps`` (personal values replaced unless storing text), whatever braces its strings hold."""
    events = [_event(n, RAW_EVENTS[i]) for n, i in enumerate(chosen)]
    column = normalize.chat_event_table("s1", AT, events, store_text=store_text).column("raw_json")
    column.validate(full=True)
    expected = [
        orjson.dumps(event.raw if store_text else normalize._redact(event.raw)).decode() for event in events
    ]
    assert column.to_pylist() == expected
    if not store_text:
        assert not any("Jane" in value or "héllo" in value for value in column.to_pylist())
    assert all(event.raw is RAW_EVENTS[i] for event, i in zip(events, chosen, strict=True))  # inputs untouched
    assert RAW_EVENTS[0]["text"] == SECRET_LINE
