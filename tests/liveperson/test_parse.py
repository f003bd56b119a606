"""Parsing decoded payloads into records: the published examples, and each quirk of the API as its own rule."""

from __future__ import annotations

import contextlib
import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.liveperson.errors import PayloadError
from pipelines.liveperson.parse import (
    as_list,
    attr,
    parse_agent_session_location,
    parse_availability,
    parse_available_agents,
    parse_available_slots,
    parse_chat,
    parse_chat_info,
    parse_chat_sessions,
    parse_domain,
    parse_events,
    parse_login,
    parse_session_info,
    to_int,
    to_utc_datetime,
)
from pipelines.liveperson.records import SkillRef

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> Any:
    return orjson.loads((PAYLOADS / name).read_bytes())


def agents_payload(*agents: Any) -> dict[str, Any]:
    agent: Any = agents[0] if len(agents) == 1 else list(agents)
    return {"availableAgents": {"agents": {"agent": agent}}}


def one_agent(**fields: Any) -> Any:
    item = {"@id": "1", "@chatState": "2", "@voiceState": "1", "@maxChats": "4", **fields}
    (agent,) = parse_available_agents(agents_payload(item)).agents
    return agent


def events_payload(*events: Any) -> dict[str, Any]:
    event: Any = events[0] if len(events) == 1 else list(events)
    return {"events": {"event": event}}


def one_event(**fields: Any) -> Any:
    (event,), _ = parse_events(events_payload({"@id": "7", "@type": "line", **fields}), chat_id="C1")
    return event


# --- the published examples ---


def test_published_session_info_gives_the_agent_with_three_named_skills() -> None:
    info = parse_session_info(payload("session_info.json"))

    assert info.agent_id == "25025413"
    assert info.agent_name == "John Smith"
    assert info.display_name == "John Smith"
    assert info.login_name == "john@company.com"
    assert info.max_chats == -1
    assert (info.availability.chat, info.availability.voice) == ("Online", "Offline")
    assert info.skills == (
        SkillRef("25975313", "Sales"),
        SkillRef("26060413", "Billing"),
        SkillRef("26077613", "OrdersHandlers"),
    )


def test_published_availability_gives_chat_online_and_voice_offline() -> None:
    availability = parse_availability(payload("availability.json"))

    assert (availability.chat, availability.voice) == ("Online", "Offline")


def test_availability_without_voice_gives_no_voice() -> None:
    availability = parse_availability(payload("availability_change.json"))

    assert (availability.chat, availability.voice) == ("Online", None)


def test_availability_value_outside_the_documented_four_is_kept_as_served() -> None:
    availability = parse_availability({"availability": {"chat": "Back in 5", "voice": "Offline"}})

    assert availability.chat == "Back in 5"


def test_published_available_agents_gives_every_agent_with_state_capacity_and_skills() -> None:
    page = parse_available_agents(payload("available_agents.json"))

    assert [a.agent_id for a in page.agents] == [
        "25025413",
        "26559413",
        "26621513",
        "26663513",
        "26699013",
        "26729413",
    ]
    reem = page.agents[0]
    assert (reem.chat_state_code, reem.chat_state) == (2, "Online")
    assert (reem.voice_state_code, reem.voice_state) == (1, "Offline")
    assert reem.max_chats == -1
    assert reem.elapsed_in_state_ms == 908445
    assert (reem.user_name, reem.nickname, reem.email) == ("Reem Diab", "Reem Diab", "reemd@liveperson.com")
    assert reem.privilege_group == "administrators"
    assert (reem.agent_group_id, reem.agent_group_name) == ("-1", "Admin")
    assert [s.skill_name for s in reem.skills] == ["Sales", "Billing", "OrdersHandlers"]
    assert reem.chats is None
    assert page.next_href is None


def test_published_available_slots_is_one() -> None:
    assert parse_available_slots(payload("available_slots.json")) == 1


def test_published_chat_resource_gives_links_events_info_and_next_from() -> None:
    chat = parse_chat(payload("chat.json"), chat_id="H1")

    assert chat.chat_id == "H1"
    assert chat.next_from == 4
    assert set(chat.links) == {
        "self",
        "events",
        "info",
        "next",
        "collaboration-channels",
        "visit-id",
        "transfer",
        "transfer-account",
        "agent-survey",
    }
    assert [(e.event_id, e.event_type, e.state) for e in chat.events] == [
        (0, "state", "waiting"),
        (1, "line", None),
        (2, "state", "chatting"),
        (3, "line", None),
    ]
    assert all(e.chat_id == "H1" for e in chat.events)
    assert chat.events[0].event_time == datetime(2026, 11, 27, 11, 30, 0, 695000, tzinfo=UTC)
    greeting = chat.events[1]
    assert (greeting.by, greeting.source, greeting.text_type, greeting.system_message_id) == (
        "info",
        "system",
        "plain",
        "4",
    )
    assert chat.info is not None
    assert chat.info.state == "chatting"
    assert chat.info.chat_session_key == "H2170755172687460894-b7d761017809489ea1a257461eb373eeK8457415"
    assert (chat.info.agent_id, chat.info.agent_name) == ("25025413", "John Smith")
    assert (chat.info.skill_id, chat.info.skill_name) == ("25975313", "Sales")
    assert chat.info.chat_timeout_s == 40
    assert chat.info.rt_session_id == "4711081542"
    assert chat.info.visitor_name == "visitor"
    assert chat.info.start_time == datetime(2026, 11, 27, 11, 30, 0, 695000, tzinfo=UTC)
    assert chat.info.last_update == datetime(2026, 11, 27, 11, 30, 41, 120000, tzinfo=UTC)


def test_spec_login_gives_bearer_csrf_session_ttl_and_user() -> None:
    login = parse_login(payload("login.json"))

    assert login.bearer == "bearer-4b7a0c2e9d5f4e1a8c3b6d7e0f1a2b3c"
    assert login.csrf == "e2b5c8a1-6a0b-4bb8-8c1d-1f4f0a3c9d11"
    assert login.session_ttl_ms == 28_800_000
    assert (login.user_id, login.login_name) == ("25025413", "john@company.com")


def test_login_secrets_stay_out_of_the_record_repr() -> None:
    login = parse_login(payload("login.json"))

    assert "bearer-4b7a" not in repr(login)
    assert "e2b5c8a1" not in repr(login)


def test_login_without_bearer_is_a_payload_error() -> None:
    body = payload("login.json")
    del body["bearer"]

    with pytest.raises(PayloadError):
        parse_login(body)


def test_login_error_body_withholds_the_secrets() -> None:
    body = payload("login.json")
    body["bearer"] = None

    with pytest.raises(PayloadError) as caught:
        parse_login(body)

    assert b"e2b5c8a1" not in caught.value.body
    assert b"4f5b8d21" not in caught.value.body
    assert orjson.loads(caught.value.body)["config"]["userId"] == "25025413"


def test_agent_session_id_is_the_last_path_segment_of_the_location_link() -> None:
    assert parse_agent_session_location(payload("agent_session_location.json")) == (
        "7b2d4f1e-93a0-4c55-b8e6-0e1f2a3b4c5d"
    )


def test_agent_session_location_without_link_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        parse_agent_session_location({"agentSessionLocation": {}})


def test_domain_in_single_object_form_gives_its_base_uri() -> None:
    assert parse_domain(payload("domain.json")) == "va-a.agentvep.liveperson.net"


def test_domain_in_base_uris_form_picks_agent_vep_case_sensitively() -> None:
    assert parse_domain(payload("domain_base_uris.json")) == "va-a.agentvep.liveperson.net"


def test_domain_of_another_service_can_be_picked() -> None:
    assert parse_domain(payload("domain_base_uris.json"), service="smt") == "va.sm.liveperson.net"


def test_domain_without_the_requested_service_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        parse_domain({"baseURIs": [{"service": "smt", "account": "1", "baseURI": "h"}]})
    with pytest.raises(PayloadError):
        parse_domain({"service": "smt", "account": "1", "baseURI": "h"})


def test_spec_chat_sessions_without_at_links_give_chat_ids_and_epoch_start_times() -> None:
    sessions = parse_chat_sessions(payload("chat_sessions.json"))

    assert [s.chat_id for s in sessions] == [
        "H2170755172687460894-b7d761017809489ea1a257461eb373eeK8457415",
        "H2170755172687460895-0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5fK8457416",
    ]
    assert sessions[0].chat_session_key == "H2170755172687460894-b7d761017809489ea1a257461eb373eeK8457415"
    assert sessions[0].href.endswith("/chat/H2170755172687460894-b7d761017809489ea1a257461eb373eeK8457415")
    assert sessions[0].start_time == datetime(2026, 11, 27, 4, 53, 0, 123000, tzinfo=UTC)


def test_spec_events_with_numeric_ids_and_unprefixed_names_give_events_and_next_from() -> None:
    events, next_from = parse_events(payload("events.json"), chat_id="C9")

    assert next_from == 5
    assert [(e.event_id, e.event_type) for e in events] == [
        (0, "state"),
        (1, "line"),
        (2, "state"),
        (3, "line"),
        (4, "line"),
    ]
    assert events[0].event_time == datetime(2026, 11, 27, 11, 30, 0, tzinfo=UTC)
    assert events[1].system_message_id == "4"


def test_chat_info_is_read_wrapped_in_info_or_as_the_inner_object() -> None:
    wrapped = parse_chat_info(payload("chat_info.json"))
    inner = parse_chat_info(payload("chat_info.json")["info"])

    assert wrapped == inner
    assert wrapped.state == "waiting"
    assert wrapped.skill_name == "testSkill"
    assert wrapped.chat_timeout_s == 40
    assert wrapped.start_time == datetime(2026, 11, 28, 0, 0, 5, 183000, tzinfo=UTC)


def test_chat_info_numeric_ids_are_kept_as_text() -> None:
    info = parse_chat_info(payload("chat_info.json"))

    assert (info.visitor_id, info.rt_session_id) == ("12345678910", "12345678910")


# --- agents: single-vs-list, nulls, strings as numbers ---


def test_single_agent_object_becomes_one_agent() -> None:
    page = parse_available_agents(agents_payload({"@id": "5", "@chatState": "2"}))

    assert [a.agent_id for a in page.agents] == ["5"]


@pytest.mark.parametrize("agents", [None, "", {}, [], {"agent": None}, {"agent": []}])
def test_null_or_empty_agents_become_no_agents(agents: Any) -> None:
    assert parse_available_agents({"availableAgents": {"agents": agents}}).agents == ()


def test_missing_agents_become_no_agents() -> None:
    assert parse_available_agents({"availableAgents": {}}).agents == ()


def test_single_skill_string_becomes_one_skill() -> None:
    agent = one_agent(skills={"skill": "25975313"}, skillsInfo={"skillInfo": {"id": "25975313", "name": "Sales"}})

    assert agent.skills == (SkillRef("25975313", "Sales"),)


def test_skill_list_becomes_one_skill_each_in_served_order() -> None:
    agent = one_agent(skills={"skill": ["3", "1", "2"]})

    assert [s.skill_id for s in agent.skills] == ["3", "1", "2"]


def test_null_skills_become_no_skills() -> None:
    assert one_agent(skills=None, skillsInfo=None).skills == ()


def test_missing_skills_become_no_skills() -> None:
    assert one_agent().skills == ()


def test_skill_names_are_joined_from_skills_info_onto_skill_ids() -> None:
    agent = one_agent(
        skills={"skill": ["1", "2"]},
        skillsInfo={"skillInfo": [{"id": "2", "name": "Billing"}, {"id": "1", "name": "Sales"}]},
    )

    assert agent.skills == (SkillRef("1", "Sales"), SkillRef("2", "Billing"))


def test_skill_without_skills_info_has_no_name() -> None:
    assert one_agent(skills={"skill": "9"}).skills == (SkillRef("9", None),)


def test_skill_named_only_in_skills_info_is_still_a_skill() -> None:
    agent = one_agent(skills=None, skillsInfo={"skillInfo": {"id": "4", "name": "Orders"}})

    assert agent.skills == (SkillRef("4", "Orders"),)


def test_repeated_skill_id_is_one_skill() -> None:
    assert one_agent(skills={"skill": ["1", "1"]}).skills == (SkillRef("1", None),)


def test_numeric_skill_ids_are_kept_as_text() -> None:
    agent = one_agent(skills={"skill": [25975313]}, skillsInfo={"skillInfo": {"id": 25975313, "name": "Sales"}})

    assert agent.skills == (SkillRef("25975313", "Sales"),)


def test_skill_without_id_rejects_the_whole_payload() -> None:
    with pytest.raises(PayloadError):
        one_agent(skillsInfo={"skillInfo": {"name": "Sales"}})


def test_numbers_as_strings_become_ints() -> None:
    agent = one_agent(**{"@maxChats": "-1", "@chatState": "2", "elapsedTimeInState": "908445"})

    assert (agent.max_chats, agent.chat_state_code, agent.elapsed_in_state_ms) == (-1, 2, 908445)


def test_numbers_as_numbers_are_read_too() -> None:
    agent = one_agent(**{"@maxChats": 3, "@chatState": 4, "elapsedTimeInState": 1200})

    assert (agent.max_chats, agent.chat_state, agent.elapsed_in_state_ms) == (3, "Away", 1200)


def test_offline_elapsed_zero_is_kept_as_zero() -> None:
    agent = one_agent(**{"@chatState": "1", "elapsedTimeInState": "0"})

    assert (agent.chat_state, agent.elapsed_in_state_ms) == ("Offline", 0)


def test_non_numeric_elapsed_time_becomes_none() -> None:
    assert one_agent(elapsedTimeInState="soon").elapsed_in_state_ms is None


@pytest.mark.parametrize(("code", "name"), [("1", "Offline"), ("2", "Online"), ("3", "Occupied"), ("4", "Away")])
def test_state_codes_one_to_four_are_named(code: str, name: str) -> None:
    agent = one_agent(**{"@chatState": code, "@voiceState": code})

    assert (agent.chat_state_code, agent.chat_state) == (int(code), name)
    assert (agent.voice_state_code, agent.voice_state) == (int(code), name)


def test_unknown_state_code_is_kept_as_unknown_code() -> None:
    agent = one_agent(**{"@chatState": "7"})

    assert (agent.chat_state_code, agent.chat_state) == (7, "unknown:7")


def test_non_numeric_state_is_kept_as_unknown_text() -> None:
    agent = one_agent(**{"@chatState": "Busy"})

    assert (agent.chat_state_code, agent.chat_state) == (None, "unknown:Busy")


def test_state_given_by_its_name_gets_its_code() -> None:
    agent = one_agent(**{"@chatState": "Occupied"})

    assert (agent.chat_state_code, agent.chat_state) == (3, "Occupied")


def test_missing_state_is_none() -> None:
    agent = parse_available_agents(agents_payload({"@id": "1"})).agents[0]

    assert (agent.chat_state_code, agent.chat_state, agent.voice_state_code, agent.voice_state) == (
        None,
        None,
        None,
        None,
    )


def test_agent_group_id_minus_one_is_kept_as_text() -> None:
    assert one_agent(agentGroupId="-1").agent_group_id == "-1"


def test_agent_group_id_as_number_is_kept_as_text() -> None:
    assert one_agent(agentGroupId=-1).agent_group_id == "-1"


def test_current_chat_count_becomes_int() -> None:
    assert one_agent(chats="2").chats == 2
    assert one_agent(**{"@chats": 3}).chats == 3


def test_absent_chat_count_is_none_not_zero() -> None:
    assert one_agent().chats is None


def test_missing_agent_fields_become_none() -> None:
    agent = parse_available_agents(agents_payload({"@id": "1"})).agents[0]

    assert agent.max_chats is None
    assert agent.elapsed_in_state_ms is None
    assert (agent.user_name, agent.nickname, agent.email, agent.privilege_group) == (None, None, None, None)
    assert (agent.agent_group_id, agent.agent_group_name) == (None, None)


def test_agent_id_without_at_is_accepted() -> None:
    assert parse_available_agents(agents_payload({"id": 26559413})).agents[0].agent_id == "26559413"


def test_unknown_agent_fields_are_preserved_in_raw_as_served() -> None:
    item = {"@id": "1", "@chatState": "2", "shiftStatus": {"onShift": True}}
    page = parse_available_agents(agents_payload(item))

    assert page.agents[0].raw is item


def test_published_agent_raw_keeps_every_served_field() -> None:
    body = payload("available_agents.json")
    served = copy.deepcopy(body["availableAgents"]["agents"]["agent"][0])

    agent = parse_available_agents(body).agents[0]

    assert agent.raw == served


def test_agent_without_id_rejects_the_whole_payload_with_its_body() -> None:
    body = agents_payload({"@id": "1"}, {"@chatState": "2"})

    with pytest.raises(PayloadError) as caught:
        parse_available_agents(body)

    assert caught.value.endpoint == "availableAgents"
    assert caught.value.status is None
    assert orjson.loads(caught.value.body) == body


def test_agent_that_is_not_an_object_rejects_the_whole_payload() -> None:
    with pytest.raises(PayloadError):
        parse_available_agents(agents_payload({"@id": "1"}, "26559413"))


def test_available_agents_next_link_is_kept() -> None:
    body = {
        "availableAgents": {
            "link": {"@href": "https://h/availableAgents?timeStamp=1795755180000", "@rel": "next"},
            "agents": None,
        }
    }

    assert parse_available_agents(body).next_href == "https://h/availableAgents?timeStamp=1795755180000"


def test_null_available_agents_is_an_empty_page() -> None:
    assert parse_available_agents({"availableAgents": None}).agents == ()


# --- session info ---


def test_session_info_with_one_skill_object_has_one_skill() -> None:
    body = {"info": {"id": "1", "skillsInfo": {"skillInfo": {"id": "5", "name": "Sales"}}}}

    assert parse_session_info(body).skills == (SkillRef("5", "Sales"),)


def test_session_info_with_null_skills_has_no_skills() -> None:
    assert parse_session_info({"info": {"id": "1", "skillsInfo": None}}).skills == ()


def test_session_info_without_agent_id_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        parse_session_info({"info": {"agentName": "x"}})


# --- slots ---


@pytest.mark.parametrize(("served", "slots"), [(1, 1), ("3", 3), (-1, -1), ("-1", -1), (0, 0)])
def test_available_slots_number_or_numeric_string(served: Any, slots: int) -> None:
    assert parse_available_slots({"availableSlots": served}) == slots


@pytest.mark.parametrize("served", [None, "many", [], {}])
def test_available_slots_that_is_not_a_number_is_a_payload_error(served: Any) -> None:
    with pytest.raises(PayloadError):
        parse_available_slots({"availableSlots": served})


# --- chat sessions ---


def test_chat_sessions_with_at_spelled_links_are_accepted() -> None:
    body = {"chatSessions": {"chatSession": {"link": {"@href": "https://h/chat/C1", "@rel": "chat-session"}}}}

    assert [s.chat_id for s in parse_chat_sessions(body)] == ["C1"]


def test_single_chat_session_object_becomes_one_session() -> None:
    body = {"chatSessions": {"chatSession": {"link": {"href": "https://h/chat/C1", "rel": "chat-session"}}}}

    assert len(parse_chat_sessions(body)) == 1


def test_chat_id_leaves_out_the_query_of_the_link() -> None:
    body = {"chatSessions": {"chatSession": {"link": {"href": "https://h/chat/C1?v=1&NC=true", "rel": "chat-session"}}}}

    assert parse_chat_sessions(body)[0].chat_id == "C1"


@pytest.mark.parametrize(
    "start", [1795755180123, "1795755180123", "2026-11-27T04:53:00.123Z", "2026-11-27T05:53:00.123+01:00"]
)
def test_chat_session_start_time_as_epoch_ms_numeric_string_or_iso(start: Any) -> None:
    body = {
        "chatSessions": {
            "chatSession": {"link": {"href": "https://h/chat/C1", "rel": "chat-session"}, "startTime": start}
        }
    }

    assert parse_chat_sessions(body)[0].start_time == datetime(2026, 11, 27, 4, 53, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize("sessions", [None, {}, {"chatSession": None}, {"chatSession": []}])
def test_no_chat_sessions_become_an_empty_list(sessions: Any) -> None:
    assert parse_chat_sessions({"chatSessions": sessions}) == []


def test_chat_session_without_a_link_rejects_the_whole_payload() -> None:
    with pytest.raises(PayloadError):
        parse_chat_sessions({"chatSessions": {"chatSession": [{"chatSessionKey": "k"}]}})


def test_chat_session_link_with_an_unreadable_url_rejects_the_whole_payload() -> None:
    with pytest.raises(PayloadError):
        parse_chat_sessions({"chatSessions": {"chatSession": {"link": {"href": "http://[bad", "rel": "chat-session"}}}})


# --- events ---


def test_at_id_string_zero_and_numeric_id_zero_are_the_same_event_id() -> None:
    (spelled,), _ = parse_events(events_payload({"@id": "0", "@type": "state"}), chat_id="C")
    (numeric,), _ = parse_events(events_payload({"id": 0, "type": "state"}), chat_id="C")

    assert spelled.event_id == numeric.event_id == 0


def test_single_event_object_becomes_one_event() -> None:
    events, _ = parse_events(events_payload({"@id": "3", "@type": "state", "state": "ended"}), chat_id="C")

    assert [(e.event_id, e.state) for e in events] == [(3, "ended")]


@pytest.mark.parametrize("block", [None, {}, {"event": None}, {"event": []}, {"event": ""}])
def test_null_or_missing_events_become_no_events(block: Any) -> None:
    assert parse_events({"events": block}, chat_id="C") == ([], None)


def test_unknown_event_type_is_kept_with_raw_json() -> None:
    item = {"@id": "5", "@type": "a2a-transfer", "time": "2026-11-27T06:30:00Z", "targetSkill": "Billing"}

    (event,), _ = parse_events(events_payload(item), chat_id="C")

    assert event.event_type == "a2a-transfer"
    assert event.raw is item
    assert event.raw["targetSkill"] == "Billing"


def test_url_event_keeps_its_page_in_raw() -> None:
    event = one_event(**{"@type": "url", "url": "https://shop.example/cart"})

    assert (event.event_type, event.raw["url"]) == ("url", "https://shop.example/cart")


def test_time_without_milliseconds_parses_to_utc() -> None:
    assert one_event(time="2026-11-27T06:30:25-05:00").event_time == datetime(2026, 11, 27, 11, 30, 25, tzinfo=UTC)


def test_time_with_milliseconds_parses_to_utc() -> None:
    assert one_event(time="2026-11-27T06:30:25.502-05:00").event_time == datetime(
        2026, 11, 27, 11, 30, 25, 502000, tzinfo=UTC
    )


def test_time_with_positive_offset_parses_to_utc() -> None:
    assert one_event(time="2026-11-27T02:00:00+02:00").event_time == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


def test_time_with_z_suffix_parses_to_utc() -> None:
    assert one_event(time="2026-11-27T02:00:00Z").event_time == datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def test_unreadable_event_time_becomes_none_and_stays_in_raw() -> None:
    event = one_event(time="yesterday")

    assert event.event_time is None
    assert event.raw["time"] == "yesterday"


@pytest.mark.parametrize("served", [4, "4"])
def test_system_message_id_number_or_string_is_stored_as_string(served: Any) -> None:
    assert one_event(systemMessageId=served).system_message_id == "4"


def test_by_holding_an_agent_name_is_kept_as_served() -> None:
    assert one_event(by="John Smith", source="agent").by == "John Smith"


def test_sub_type_is_kept_in_raw() -> None:
    assert one_event(subType="REGULAR").raw["subType"] == "REGULAR"


def test_text_is_kept_as_served_without_unescaping() -> None:
    text = "I&#39;ll help &lt;b&gt;now&lt;/b&gt;"

    event = one_event(text=text, textType="html")

    assert (event.text, event.text_type) == (text, "html")


def test_missing_event_fields_become_none() -> None:
    event = one_event()

    assert (event.event_time, event.source, event.by, event.state) == (None, None, None, None)
    assert (event.text, event.text_type, event.system_message_id) == (None, None, None)


def test_event_without_id_rejects_the_whole_payload() -> None:
    with pytest.raises(PayloadError):
        parse_events(events_payload({"@id": "0", "@type": "state"}, {"@type": "line"}), chat_id="C")


def test_event_with_non_numeric_id_rejects_the_whole_payload() -> None:
    with pytest.raises(PayloadError):
        parse_events(events_payload({"@id": "first", "@type": "state"}), chat_id="C")


def test_event_without_type_rejects_the_whole_payload() -> None:
    with pytest.raises(PayloadError):
        parse_events(events_payload({"@id": "0"}), chat_id="C")


def test_event_that_is_not_an_object_rejects_the_whole_payload() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_events(events_payload({"@id": "0", "@type": "state"}, "line"), chat_id="C7")

    assert caught.value.endpoint == "chat/C7/events"


def test_events_without_a_next_link_have_no_next_from() -> None:
    assert parse_events(events_payload({"@id": "0", "@type": "state"}), chat_id="C")[1] is None


# --- the chat resource ---


def test_single_link_object_is_read_like_a_list() -> None:
    body = {"chat": {"link": {"@href": "https://h/chat/C1?from=12", "@rel": "next"}}}

    chat = parse_chat(body, chat_id="C1")

    assert chat.links == {"next": "https://h/chat/C1?from=12"}
    assert chat.next_from == 12


def test_links_without_at_are_read_like_at_links() -> None:
    body = {"chat": {"link": [{"href": "https://h/chat/C1?from=3", "rel": "next"}]}}

    assert parse_chat(body, chat_id="C1").next_from == 3


def test_next_from_falls_back_to_the_events_next_link() -> None:
    body = {"chat": {"events": {"link": {"@href": "https://h/chat/C1/events?from=8", "@rel": "next"}}}}

    assert parse_chat(body, chat_id="C1").next_from == 8


def test_chat_without_a_next_link_has_no_next_from() -> None:
    assert (
        parse_chat({"chat": {"link": {"@href": "https://h/chat/C1", "@rel": "self"}}}, chat_id="C1").next_from is None
    )


def test_next_link_with_an_unreadable_url_gives_no_next_from() -> None:
    body = {"chat": {"link": {"@href": "http://[bad/chat/C1?from=3", "@rel": "next"}}}

    assert parse_chat(body, chat_id="C1").next_from is None


def test_next_link_with_a_non_numeric_from_gives_no_next_from() -> None:
    body = {"chat": {"link": {"@href": "https://h/chat/C1?from=later", "@rel": "next"}}}

    assert parse_chat(body, chat_id="C1").next_from is None


@pytest.mark.parametrize("events", [None, "", {}, {"event": None}])
def test_chat_with_no_new_events_has_an_empty_event_list(events: Any) -> None:
    assert parse_chat({"chat": {"events": events}}, chat_id="C1").events == ()


def test_chat_with_one_event_object_has_one_event() -> None:
    body = {"chat": {"events": {"event": {"@id": "4", "@type": "state", "state": "ended"}}}}

    assert [e.event_id for e in parse_chat(body, chat_id="C1").events] == [4]


def test_chat_without_info_has_no_info() -> None:
    assert parse_chat({"chat": {}}, chat_id="C1").info is None


def test_chat_visit_id_comes_from_the_visit_link_when_info_lacks_it() -> None:
    body = {
        "chat": {
            "link": {"@href": "https://h/agentSession/S/visits/visit/V42", "@rel": "visit-id"},
            "info": {"state": "chatting"},
        }
    }

    info = parse_chat(body, chat_id="C1").info

    assert info is not None
    assert info.visit_id == "V42"


def test_bad_event_in_chat_resource_names_the_chat_endpoint() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_chat({"chat": {"events": {"event": {"@type": "line"}}}}, chat_id="C3")

    assert caught.value.endpoint == "chat/C3"


# --- unusable shapes: always PayloadError with the payload as body ---

PARSERS = [
    pytest.param(parse_login, id="login"),
    pytest.param(parse_agent_session_location, id="agentSessionLocation"),
    pytest.param(parse_domain, id="domain"),
    pytest.param(parse_session_info, id="info"),
    pytest.param(parse_availability, id="availability"),
    pytest.param(parse_available_agents, id="availableAgents"),
    pytest.param(parse_available_slots, id="availableSlots"),
    pytest.param(parse_chat_sessions, id="chatSessions"),
    pytest.param(lambda p: parse_chat(p, chat_id="C"), id="chat"),
    pytest.param(lambda p: parse_events(p, chat_id="C"), id="events"),
    pytest.param(parse_chat_info, id="chatInfo"),
]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("body", [[], "text", 3, None, True])
def test_a_payload_that_is_not_an_object_is_a_payload_error(parse: Any, body: Any) -> None:
    with pytest.raises(PayloadError) as caught:
        parse(body)

    assert caught.value.body == orjson.dumps(body)


@pytest.mark.parametrize("parse", [p for p in PARSERS if p.id not in {"chatInfo"}])
def test_a_payload_without_its_top_level_key_is_a_payload_error(parse: Any) -> None:
    with pytest.raises(PayloadError):
        parse({"error": {"message": "something else", "internalCode": 10}})


@pytest.mark.parametrize(
    ("parse", "key"),
    [
        (parse_session_info, "info"),
        (parse_availability, "availability"),
        (parse_available_agents, "availableAgents"),
        (parse_chat_sessions, "chatSessions"),
        (lambda p: parse_chat(p, chat_id="C"), "chat"),
        (lambda p: parse_events(p, chat_id="C"), "events"),
        (parse_chat_info, "info"),
    ],
)
def test_a_top_level_value_of_the_wrong_type_is_a_payload_error(parse: Any, key: str) -> None:
    with pytest.raises(PayloadError):
        parse({key: ["not", "an", "object"]})


def test_payload_error_body_is_the_repr_when_the_payload_is_not_json() -> None:
    body = {"availableAgents": {"agents": {"agent": [{"@id": "1"}, {"@chatState": 2**70}]}}}

    with pytest.raises(PayloadError) as caught:
        parse_available_agents(body)

    assert caught.value.body == repr(body).encode()


# --- helpers ---


@pytest.mark.parametrize(
    ("value", "expected"), [(None, []), ({"a": 1}, [{"a": 1}]), ("x", ["x"]), ([1, 2], [1, 2]), (0, [0])]
)
def test_as_list_turns_null_one_or_many_into_a_list(value: Any, expected: list[Any]) -> None:
    assert as_list(value) == expected


def test_attr_reads_either_spelling_and_prefers_the_at_one() -> None:
    assert attr({"@id": "1"}, "id") == "1"
    assert attr({"id": 0}, "id") == 0
    assert attr({"@id": "1", "id": "2"}, "id") == "1"
    assert attr("not a dict", "id") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("-1", -1), (" 908445 ", 908445), (5, 5), (5.0, 5), ("2.0", 2), (5.5, None), ("x", None), (None, None)],
)
def test_to_int_reads_numbers_and_numeric_strings(value: Any, expected: int | None) -> None:
    assert to_int(value) == expected


@pytest.mark.parametrize("value", [True, "nan", "inf", float("nan"), float("inf"), [1], {"a": 1}, "1" * 5000])
def test_to_int_gives_none_for_what_is_not_an_integer(value: Any) -> None:
    assert to_int(value) is None


def test_time_without_offset_is_taken_as_utc() -> None:
    assert to_utc_datetime("2026-11-27T02:00:00") == datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "soon", 10**30, "-" + "9" * 30, float("inf"), True, [], {}])
def test_to_utc_datetime_gives_none_for_unreadable_times(value: Any) -> None:
    assert to_utc_datetime(value) is None


# --- properties: any JSON-ish value gives records or a PayloadError, nothing else ---

TRICKY_TEXT = ["", "0", "-1", "2", "7", "agentVep", "Online", "2026-11-27T02:00:00+02:00", "1795755180123",
               "1e999", "nan", "line", "state"]  # fmt: skip

leaves = (
    st.sampled_from(TRICKY_TEXT)
    | st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.text(max_size=6)
)
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


def shaped(template: Any) -> st.SearchStrategy[Any]:
    """Values that follow a payload's expected shape, any node of which may be missing or an arbitrary value.

    Random JSON alone rarely reaches the inner loops; following the shape gets there, and the arbitrary
    replacements probe every place where a wrong type could slip through.
    """
    if isinstance(template, dict):
        follows = st.fixed_dictionaries({}, optional={key: shaped(value) for key, value in template.items()})
    elif isinstance(template, list):
        item = shaped(template[0])
        follows = st.lists(item, max_size=3) | item
    else:
        follows = template
    return follows | json_values


HREFS = ["http://[bad", "https://h/chat/C1?from=x", "https://h/chat/C1?from=9", "/", "?from=", "https://h/a/S1"]
RELS = ["next", "location", "chat-session", "visit-id", "self"]
HREF = st.sampled_from(HREFS) | leaves
REL = st.sampled_from(RELS) | leaves
LINK = {"@href": HREF, "@rel": REL, "href": HREF, "rel": REL}
SKILLS = {"skill": [leaves | st.fixed_dictionaries({"@id": leaves})]}
SKILLS_INFO = {"skillInfo": [{"id": leaves, "@id": leaves, "name": leaves}]}
AGENT = dict.fromkeys(["@id", "id", "@chatState", "@voiceState", "@maxChats", "chats", "elapsedTimeInState",
                       "userName", "agentGroupId"], leaves) | {"skills": SKILLS, "skillsInfo": SKILLS_INFO}  # fmt: skip
EVENT = dict.fromkeys(["@id", "id", "@type", "type", "time", "text", "textType", "by", "source", "state",
                       "systemMessageId"], leaves)  # fmt: skip
INFO = dict.fromkeys(["state", "agentId", "startTime", "lastUpdate", "chatTimeout", "visitorId", "visitId"], leaves)
EVENTS = {"link": [LINK], "event": [EVENT]}

PROPERTY_CASES = [
    pytest.param(
        parse_login, {"bearer": leaves, "csrf": leaves, "sessionTTl": leaves, "config": {"userId": leaves}}, id="login"
    ),
    pytest.param(parse_agent_session_location, {"agentSessionLocation": {"link": [LINK]}}, id="agentSessionLocation"),
    pytest.param(
        parse_domain,
        {"service": leaves, "baseURI": leaves, "baseURIs": [{"service": leaves, "baseURI": leaves}]},
        id="domain",
    ),
    pytest.param(
        parse_session_info,
        {"info": {"id": leaves, "maxChats": leaves, "availability": {"chat": leaves}, "skillsInfo": SKILLS_INFO}},
        id="info",
    ),
    pytest.param(parse_availability, {"availability": {"chat": leaves, "voice": leaves}}, id="availability"),
    pytest.param(
        parse_available_agents,
        {"availableAgents": {"link": [LINK], "agents": {"agent": [AGENT]}}},
        id="availableAgents",
    ),
    pytest.param(parse_available_slots, {"availableSlots": leaves}, id="availableSlots"),
    pytest.param(
        parse_chat_sessions,
        {"chatSessions": {"chatSession": [{"link": [LINK], "startTime": leaves}]}},
        id="chatSessions",
    ),
    pytest.param(
        lambda p: parse_chat(p, chat_id="C"), {"chat": {"link": [LINK], "events": EVENTS, "info": INFO}}, id="chat"
    ),
    pytest.param(lambda p: parse_events(p, chat_id="C"), {"events": EVENTS}, id="events"),
    pytest.param(parse_chat_info, {"info": INFO}, id="chatInfo"),
]


@pytest.mark.parametrize(("parse", "template"), PROPERTY_CASES)
def test_any_json_value_gives_records_or_a_payload_error(parse: Any, template: Any) -> None:
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(shaped(template))
    def check(value: Any) -> None:
        with contextlib.suppress(PayloadError):
            parse(value)

    check()


@settings(deadline=None)
@given(json_values)
def test_helpers_never_raise(value: Any) -> None:
    as_list(value)
    attr(value, "id")
    to_int(value)
    to_utc_datetime(value)
