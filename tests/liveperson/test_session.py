"""The agent session lifecycle over real HTTP: login, agent session, 401 re-login and replay, refresh, logout."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import requests

from pipelines.liveperson.client import AgentApiClient
from pipelines.liveperson.config import Credentials
from pipelines.liveperson.errors import ApiHttpError, AuthError, ChatNotFound, PayloadError
from pipelines.liveperson.session import AgentSession
from tests.fixtures.simulator import open_agent_session
from tests.liveperson.client_support import settings_for


def test_opening_logs_in_once_and_opens_one_agent_session(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    username = settings.logins[0].username
    session = AgentSession(settings, settings.logins[0], clock=simulator.clock.now)
    session.open()
    session.open()
    assert session.agent_session_id
    assert simulator.stats.logins(username) == 1
    assert simulator.stats.agent_sessions(username) == 1


def test_expired_session_logs_in_again_and_replays_on_the_new_agent_session(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    username = settings.logins[0].username
    client = AgentApiClient(settings, simulator.clock.now)
    (session,) = client.sessions
    first = client.info(session)
    old_id = session.agent_session_id
    assert simulator.expire_sessions(username) > 0
    assert client.info(session) == first
    assert session.agent_session_id != old_id
    assert simulator.stats.logins(username) == 2
    assert simulator.stats.agent_sessions(username) == 2


def test_second_401_in_a_row_is_an_auth_error_without_secrets(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    password = settings.logins[0].password
    client = AgentApiClient(settings, simulator.clock.now)
    simulator.faults.set(endpoint="info", kind="expire_session", probability=1.0)
    with pytest.raises(AuthError, match="401 again") as caught:
        client.info()
    assert password not in str(caught.value)
    assert simulator.stats.requests("info") == 2  # the request and exactly one replay


def test_a_bearer_given_alone_opens_its_own_agent_session_without_logging_in(simulator, tmp_path: Path) -> None:
    username, password = simulator.logins(1)[0]
    manual, _ = open_agent_session(simulator, username, password)
    bearer = manual.headers["Authorization"].removeprefix("Bearer ")
    settings = settings_for(simulator, tmp_path)
    session = AgentSession(settings, Credentials(None, bearer=bearer), clock=simulator.clock.now)
    info = AgentApiClient(settings, simulator.clock.now).info(session)
    assert info.agent_id == simulator.world.agent_by_login(username).agent_id
    assert simulator.stats.logins(username) == 1  # only the manual login
    assert simulator.stats.agent_sessions(username) == 2


def test_an_expired_environment_bearer_falls_back_to_the_password(simulator, tmp_path: Path) -> None:
    username, password = simulator.logins(1)[0]
    manual, _ = open_agent_session(simulator, username, password)
    bearer = manual.headers["Authorization"].removeprefix("Bearer ")
    simulator.expire_sessions(username)
    settings = settings_for(simulator, tmp_path)
    session = AgentSession(settings, Credentials(username, password, bearer), clock=simulator.clock.now)
    session.open()
    assert simulator.stats.logins(username) == 2
    assert session.agent_session_id


def test_html_page_with_status_200_is_a_payload_error_with_endpoint_status_and_body(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    simulator.faults.set(endpoint="availableAgents", kind="html", status=200)
    with pytest.raises(PayloadError) as caught:
        client.available_agents()
    assert (caught.value.endpoint, caught.value.status) == ("availableAgents", 200)
    assert b"<html" in caught.value.body.lower()


def test_truncated_body_is_a_payload_error_carrying_the_bytes_received(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    simulator.faults.set(endpoint="availableAgents", kind="truncate")
    with pytest.raises(PayloadError) as caught:
        client.available_agents()
    assert (caught.value.endpoint, caught.value.status) == ("availableAgents", 200)
    assert caught.value.body.startswith(b"{")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(caught.value.body)


def test_xml_answer_reads_the_same_as_json(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    as_json = client.available_agents()
    simulator.faults.set(endpoint="availableAgents", kind="xml")
    as_xml = client.available_agents()
    assert [(a.agent_id, a.chat_state_code) for a in as_xml.agents] == [
        (a.agent_id, a.chat_state_code) for a in as_json.agents
    ]


def test_unknown_chat_is_chat_not_found(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    with pytest.raises(ChatNotFound) as caught:
        client.poll_chat(client.sessions[0], "H0000000000000000000", 0)
    assert (caught.value.status, caught.value.endpoint) == (404, "chat/H0000000000000000000")


def test_login_is_refreshed_after_five_minutes_of_use(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    client.availability()
    simulator.clock.advance(299)
    client.availability()
    assert simulator.stats.requests("refresh") == 0
    simulator.clock.advance(2)
    client.availability()
    client.availability()
    assert simulator.stats.requests("refresh") == 1
    assert simulator.stats.logins(client.sessions[0].credentials.username) == 1


def test_close_with_logout_deletes_our_agent_session_and_logs_out(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    client = AgentApiClient(settings, simulator.clock.now)
    client.info()
    (cached,) = (tmp_path / "sessions").glob("*.json")
    entry = orjson.loads(cached.read_bytes())
    client.close(logout=True)
    assert not cached.exists()
    url = f"{simulator.base_url}/api/account/{simulator.account_id}/agentSession/{entry['agent_session_id']}/info"
    answer = requests.get(url, params={"v": "1", "NC": "true"}, headers={"Authorization": f"Bearer {entry['bearer']}"})
    assert answer.status_code == 401
    assert simulator.stats.requests("logout") == 1


def test_close_without_logout_leaves_the_session_open_for_the_next_run(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    client = AgentApiClient(settings, simulator.clock.now)
    client.info()
    client.close()
    assert simulator.stats.requests("logout") == 0
    assert len(list((tmp_path / "sessions").glob("*.json"))) == 1


def test_the_agents_own_session_is_never_closed(simulator, tmp_path: Path) -> None:
    username, password = simulator.logins(1)[0]
    own, own_url = open_agent_session(simulator, username, password)
    client = AgentApiClient(settings_for(simulator, tmp_path, [(username, password)]), simulator.clock.now)
    client.info()
    client.close(logout=True)
    assert own.get(f"{own_url}/info", params={"v": "1", "NC": "true"}).status_code == 200


def test_agent_session_post_failure_is_not_retried(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    simulator.faults.set(endpoint="agentSession", kind="server_error", status=500)
    with pytest.raises(ApiHttpError) as caught:
        client.info()
    assert (caught.value.endpoint, caught.value.status) == ("agentSession", 500)
    assert simulator.stats.requests("agentSession") == 1


def test_a_refresh_refused_with_401_leads_to_a_new_login(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    username = client.sessions[0].credentials.username
    client.availability()
    simulator.expire_sessions(username)
    simulator.clock.advance(301)
    client.availability()
    assert simulator.stats.requests("refresh") == 1
    assert simulator.stats.logins(username) == 2
    assert simulator.stats.requests("availability") == 2  # renewed before the read: no 401 on it


def test_an_unreadable_login_answer_is_a_payload_error_that_withholds_the_body(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    simulator.faults.set(endpoint="login", kind="truncate")
    with pytest.raises(PayloadError) as caught:
        client.info()
    assert (caught.value.endpoint, caught.value.status) == ("login", 200)
    assert b"bearer" not in caught.value.body and b"csrf" not in caught.value.body
