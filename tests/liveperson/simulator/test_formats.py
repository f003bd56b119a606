"""The same resources in XML when the client asks for it: ``@`` keys become attributes, lists repeated elements."""

from __future__ import annotations

import pytest
import xmltodict

from tests.fixtures.simulator import open_agent_session

XML = "application/xml"


@pytest.fixture(scope="module")
def sessions(shared_simulator):
    """One JSON and one XML agent session of an agent that is in a chat right now."""
    now = shared_simulator.clock.now()
    profile = next(a.profile for a in shared_simulator.world.agents_at(now)
                   if any(not c.ended for c in shared_simulator.world.chats_of_agent(a.profile.agent_id, now)))
    as_json = open_agent_session(shared_simulator, profile.user_name, shared_simulator.config.password)
    as_xml = open_agent_session(shared_simulator, profile.user_name, shared_simulator.config.password, fmt=XML)
    chat_id = next(c.chat_id for c in shared_simulator.world.chats_of_agent(profile.agent_id, now) if not c.ended)
    return as_json, as_xml, chat_id


def get_both(sessions, path: str) -> tuple[dict, dict]:
    (json_http, json_url), (xml_http, xml_url), _ = sessions
    as_json = json_http.get(f"{json_url}/{path}")
    as_xml = xml_http.get(f"{xml_url}/{path}")
    assert as_json.headers["Content-Type"] == "application/json"
    assert as_xml.headers["Content-Type"] == XML
    assert as_xml.content.startswith(b"<?xml")
    return as_json.json(), xmltodict.parse(as_xml.content)


def test_json_is_the_default_format(shared_simulator, sessions):
    (http, url), _, _ = sessions
    response = http.get(f"{url}/info", headers={"Accept": "*/*"})
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["info"]["id"]


def test_available_agents_in_xml_carry_the_same_agents_as_attributes(sessions):
    as_json, as_xml = get_both(sessions, "availableAgents")
    json_agents = as_json["availableAgents"]["agents"]["agent"]
    xml_agents = as_xml["availableAgents"]["agents"]["agent"]
    assert [(a["@id"], a["@chatState"], a["userName"]) for a in xml_agents] == [
        (a["@id"], a["@chatState"], a["userName"]) for a in json_agents
    ]
    assert as_xml["availableAgents"]["link"]["@rel"] == "next"


def test_info_in_xml_matches_json(sessions):
    as_json, as_xml = get_both(sessions, "info")
    for key in ("id", "loginName", "maxChats", "availability"):
        assert as_xml["info"][key] == as_json["info"][key]


def test_chat_resource_in_xml_keeps_links_events_and_info(sessions):
    *_, chat_id = sessions
    as_json, as_xml = get_both(sessions, f"chat/{chat_id}")
    assert [link["@rel"] for link in as_xml["chat"]["link"]] == [link["@rel"] for link in as_json["chat"]["link"]]
    json_events = as_json["chat"]["events"]["event"]
    xml_events = as_xml["chat"]["events"]["event"]
    json_events = json_events if isinstance(json_events, list) else [json_events]
    xml_events = xml_events if isinstance(xml_events, list) else [xml_events]
    assert [(e["@id"], e["@type"]) for e in xml_events] == [(e["@id"], e["@type"]) for e in json_events]


def test_chat_sessions_in_xml_keep_links_as_elements_without_at(sessions):
    _, as_xml = get_both(sessions, "chatSessions")
    items = as_xml["chatSessions"]["chatSession"]
    items = items if isinstance(items, list) else [items]
    assert all(set(item["link"]) == {"href", "rel"} for item in items)


def test_errors_follow_the_asked_format(shared_simulator, sessions):
    _, (http, url), _ = sessions
    response = http.get(f"{url}/chat/no-such-chat")
    assert response.status_code == 404
    assert xmltodict.parse(response.content)["error"]["responseStatus"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/xml, application/json;q=0.5", "application/xml"),
        ("application/json, application/xml", "application/json"),
        ("text/xml", "application/xml"),
    ],
)
def test_the_first_listed_of_xml_and_json_wins(sessions, accept, content_type):
    (http, url), _, _ = sessions
    assert http.get(f"{url}/availability", headers={"Accept": accept}).headers["Content-Type"] == content_type


@pytest.mark.parametrize(
    ("path", "parser"),
    [
        ("info", "parse_session_info"),
        ("availability", "parse_availability"),
        ("availableAgents", "parse_available_agents"),
        ("chat/availableSlots", "parse_available_slots"),
        ("chatSessions", "parse_chat_sessions"),
        ("chat/{chat_id}", "parse_chat"),
        ("chat/{chat_id}/events", "parse_events"),
        ("chat/{chat_id}/info", "parse_chat_info"),
    ],
)
def test_xml_reads_into_the_same_records_as_json(sessions, path, parser):
    from pipelines.liveperson import parse
    from pipelines.liveperson.decode import decode_body

    (json_http, json_url), (xml_http, xml_url), chat_id = sessions
    records = []
    for http, url in ((json_http, json_url), (xml_http, xml_url)):
        response = http.get(f"{url}/{path.format(chat_id=chat_id)}")
        payload = decode_body(response.content, response.headers["Content-Type"], endpoint=path, status=200)
        scoped = parser in ("parse_chat", "parse_events")
        parsed = getattr(parse, parser)(payload, **({"chat_id": chat_id} if scoped else {}))
        records.append(repr(parsed).replace(url, "SESSION"))
    assert records[0] == records[1]
