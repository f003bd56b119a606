"""Every fault kind is observable over real HTTP, scoped by endpoint, and switchable from Python or /_sim/faults."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
import requests
import xmltodict

from tests.fixtures.simulator import BUSY_HOUR, open_agent_session


@pytest.fixture
def agent(simulator):
    """A logged-in agent session on a fresh simulator: (requests.Session, agent session URL)."""
    username, password = simulator.logins(1)[0]
    return open_agent_session(simulator, username, password)


def test_server_error_answers_the_chosen_status_only_on_its_endpoint(simulator, agent):
    http, url = agent
    simulator.faults.set(endpoint="availableAgents", kind="server_error", status=503)
    assert http.get(f"{url}/availableAgents").status_code == 503
    assert http.get(f"{url}/info").status_code == 200


def test_status_aliases_are_accepted(simulator, agent):
    http, url = agent
    simulator.faults.set(endpoint="info", kind="502")
    response = http.get(f"{url}/info")
    assert response.status_code == 502
    assert response.json()["error"]["responseStatus"] == "BAD_GATEWAY"


def test_rate_limit_answers_429_with_retry_after_seconds(simulator, agent):
    http, url = agent
    simulator.faults.set(endpoint="*", kind="rate_limit", retry_after=7)
    response = http.get(f"{url}/availability")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_login_can_be_rate_limited(simulator):
    simulator.faults.set(endpoint="login", kind="429")
    username, password = simulator.logins(1)[0]
    response = requests.post(
        f"{simulator.base_url}/api/account/{simulator.account_id}/login?v=1.3",
        json={"username": username, "password": password},
    )
    assert response.status_code == 429


@pytest.mark.parametrize("status", [200, 502])
def test_html_error_page_comes_with_the_chosen_status(simulator, agent, status):
    http, url = agent
    simulator.faults.set(endpoint="availableAgents", kind="html", status=status)
    response = http.get(f"{url}/availableAgents")
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.content.lstrip().startswith(b"<!DOCTYPE html>")


def test_truncated_body_is_cut_inside_the_document_with_a_matching_content_length(simulator, agent):
    http, url = agent
    full = http.get(f"{url}/availableAgents").content
    simulator.faults.set(endpoint="availableAgents", kind="truncate")
    response = http.get(f"{url}/availableAgents")
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content) < len(full)
    assert full.startswith(response.content)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


def test_xml_fault_answers_xml_with_200_although_json_was_asked(simulator, agent):
    http, url = agent
    as_json = http.get(f"{url}/availableAgents").json()
    simulator.faults.set(endpoint="availableAgents", kind="xml")
    response = http.get(f"{url}/availableAgents", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/xml"
    as_xml = xmltodict.parse(response.content)
    assert [a["@id"] for a in as_xml["availableAgents"]["agents"]["agent"]] == [
        a["@id"] for a in as_json["availableAgents"]["agents"]["agent"]
    ]


def test_session_expiry_fault_answers_401_and_kills_the_agent_session(simulator, agent):
    http, url = agent
    simulator.faults.set(endpoint="info", kind="expire_session")
    assert http.get(f"{url}/info").status_code == 401
    simulator.faults.clear()
    assert http.get(f"{url}/availability").status_code == 401, "the agent session stays dead"


def test_sessions_expire_every_n_simulated_minutes(simulator, agent):
    http, url = agent
    simulator.faults.set(endpoint="*", kind="expire_session", every_minutes=15)
    assert http.get(f"{url}/info").status_code == 200, "opened at 10:00, still the same 15-minute period"
    simulator.clock.advance(timedelta(minutes=16).total_seconds())
    assert http.get(f"{url}/info").status_code == 401
    created = http.post(f"{simulator.base_url}/api/account/{simulator.account_id}/agentSession", json={"loginData": ""})
    new_url = created.json()["agentSessionLocation"]["link"]["@href"]
    assert http.get(f"{new_url}/info").status_code == 200, "a session opened in the new period works"


def test_outage_window_answers_503_everywhere_between_two_simulated_times(simulator, agent):
    http, url = agent
    simulator.faults.set(kind="outage", start=BUSY_HOUR + timedelta(minutes=5), end=BUSY_HOUR + timedelta(minutes=10))
    assert http.get(f"{url}/info").status_code == 200
    simulator.clock.advance(6 * 60)
    assert http.get(f"{url}/info").status_code == 503
    assert http.post(f"{simulator.base_url}/api/account/{simulator.account_id}/login", json={}).status_code == 503
    simulator.clock.advance(5 * 60)
    assert http.get(f"{url}/info").status_code == 200


def test_latency_delays_the_answer_past_a_short_client_timeout(simulator, agent):
    http, url = agent
    simulator.faults.set(endpoint="availability", kind="latency", ms=3000)
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(f"{url}/availability", timeout=0.3)
    assert http.get(f"{url}/info", timeout=5).status_code == 200, "other endpoints are not delayed"


def test_probability_faults_some_requests_and_not_others(simulator, agent):
    http, url = agent
    simulator.faults.set(endpoint="availability", kind="server_error", probability=0.5)
    statuses = [http.get(f"{url}/availability").status_code for _ in range(40)]
    assert set(statuses) == {200, 500}


def test_same_seed_faults_the_same_requests(simulator):
    from pipelines.liveperson.simulator.faults import Faults

    def pattern() -> list[bool]:
        faults = Faults(seed=7)
        faults.set(endpoint="info", kind="server_error", probability=0.3)
        return [faults.decide("info", BUSY_HOUR).fault is not None for _ in range(50)]

    assert pattern() == pattern()


def test_admin_endpoint_sets_lists_and_clears_faults(simulator, agent):
    http, url = agent
    admin = f"{simulator.base_url}/_sim/faults"
    listed = requests.post(admin, json={"endpoint": "availableAgents", "kind": "rate_limit", "retry_after": 3}).json()
    assert listed == [{"endpoint": "availableAgents", "kind": "rate_limit", "probability": 1.0, "retry_after": 3}]
    assert http.get(f"{url}/availableAgents").status_code == 429
    assert requests.delete(admin).json() == []
    assert http.get(f"{url}/availableAgents").status_code == 200


def test_unknown_fault_kind_is_refused(simulator):
    with pytest.raises(ValueError, match="unknown fault kind"):
        simulator.faults.set(endpoint="info", kind="gremlins")
    assert requests.post(f"{simulator.base_url}/_sim/faults", json={"kind": "gremlins"}).status_code == 400
