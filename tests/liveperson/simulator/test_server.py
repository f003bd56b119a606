"""The simulator's HTTP API over real sockets: authentication, agent-session scope and the documented shapes."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
import requests

from tests.fixtures.simulator import BUSY_HOUR, open_agent_session


def account_url(sim) -> str:
    return f"{sim.base_url}/api/account/{sim.account_id}"


def agents_with_open_chats(sim, n: int) -> list:
    """Profiles of ``n`` agents that are in at least one chat that has not ended at the simulator's time."""
    now = sim.clock.now()
    found = [
        a.profile
        for a in sim.world.agents_at(now)
        if any(not c.ended for c in sim.world.chats_of_agent(a.profile.agent_id, now))
    ]
    assert len(found) >= n, "the busy hour has busy agents"
    return found[:n]


def login_as(sim, profile) -> tuple[requests.Session, str]:
    return open_agent_session(sim, profile.user_name, sim.config.password)


def open_chat_of(sim, profile) -> str:
    now = sim.clock.now()
    return next(c.chat_id for c in sim.world.chats_of_agent(profile.agent_id, now) if not c.ended)


@pytest.fixture
def agent(simulator):
    username, password = simulator.logins(1)[0]
    return open_agent_session(simulator, username, password)


# ---- authentication -------------------------------------------------------------------------------------------


def test_available_agents_without_a_bearer_answers_401_with_a_json_error(shared_simulator, agent):
    http, url = agent
    response = requests.get(f"{url}/availableAgents", cookies=http.cookies)
    assert response.status_code == 401
    assert response.json()["error"]["responseStatus"] == "UNAUTHORIZED"


def test_login_answers_bearer_csrf_config_and_a_session_cookie(shared_simulator):
    username, password = shared_simulator.logins(1)[0]
    response = requests.post(
        f"{account_url(shared_simulator)}/login?v=1.3", json={"username": username, "password": password}
    )
    assert response.status_code == 200
    body = response.json()
    assert {"csrf", "wsuk", "config", "csdsCollectionResponse", "accountData", "sessionTTl", "bearer"} <= set(body)
    assert body["sessionTTl"] == "28800000"
    assert body["config"]["loginName"] == username
    assert body["config"]["userId"] == shared_simulator.world.agent_by_login(username).agent_id
    assert response.cookies.get("Session_id")


@pytest.mark.parametrize(
    ("body", "status"),
    [({"username": "nobody", "password": "x"}, 401), ({"user": "x"}, 400), (None, 400)],
)
def test_login_refuses_bad_credentials_401_and_bad_bodies_400(shared_simulator, body, status):
    response = requests.post(f"{account_url(shared_simulator)}/login?v=1.3", json=body)
    assert response.status_code == status
    assert "error" in response.json()


def test_blocked_user_login_answers_451(simulator):
    username, password = simulator.logins(1)[0]
    simulator.block_user(username)
    response = requests.post(f"{account_url(simulator)}/login?v=1.3", json={"username": username, "password": password})
    assert response.status_code == 451


def test_agent_session_answers_201_with_its_location_and_a_cookie_scoped_to_it(shared_simulator):
    username, password = shared_simulator.logins(1)[0]
    login = requests.post(
        f"{account_url(shared_simulator)}/login?v=1.3", json={"username": username, "password": password}
    ).json()
    response = requests.post(
        f"{account_url(shared_simulator)}/agentSession?v=1&NC=true",
        json={"loginData": ""},
        headers={"Authorization": f"Bearer {login['bearer']}"},
    )
    assert response.status_code == 201
    link = response.json()["agentSessionLocation"]["link"]
    assert link["@rel"] == "location"
    assert link["@href"].startswith(f"{account_url(shared_simulator)}/agentSession/")
    session_path = link["@href"].removeprefix(shared_simulator.base_url)
    assert [c.path for c in response.cookies] == [session_path]


def test_agent_session_call_without_its_cookie_answers_401(shared_simulator, agent):
    http, url = agent
    assert http.get(f"{url}/info").status_code == 200
    response = requests.get(f"{url}/info", headers={"Authorization": http.headers["Authorization"]})
    assert response.status_code == 401


def test_agent_session_of_another_login_answers_401(shared_simulator, agent):
    http, url = agent
    other, _ = open_agent_session(shared_simulator, *shared_simulator.logins(2)[1])
    response = requests.get(
        f"{url}/info", headers={"Authorization": other.headers["Authorization"]}, cookies=http.cookies
    )
    assert response.status_code == 401


def test_deleted_agent_session_answers_401(simulator, agent):
    http, url = agent
    assert http.delete(url).status_code == 200
    assert http.get(f"{url}/info").status_code == 401


def test_expired_sessions_answer_401_until_the_client_logs_in_again(simulator, agent):
    http, url = agent
    username = http.get(f"{url}/info").json()["info"]["loginName"]
    simulator.expire_sessions(username)
    assert http.get(f"{url}/info").status_code == 401
    fresh, fresh_url = open_agent_session(simulator, username, simulator.config.password)
    assert fresh.get(f"{fresh_url}/info").status_code == 200


def test_refresh_and_logout_need_the_csrf_and_logout_ends_the_bearer(simulator):
    username, password = simulator.logins(1)[0]
    http = requests.Session()
    login = http.post(f"{account_url(simulator)}/login?v=1.3", json={"username": username, "password": password})
    csrf, bearer = login.json()["csrf"], login.json()["bearer"]
    bad = http.post(f"{account_url(simulator)}/refresh", json={"csrf": "wrong"})
    assert bad.status_code == 401
    assert bad.json()["error"]["internalCode"] == 10
    refreshed = http.post(f"{account_url(simulator)}/refresh", json={"csrf": csrf})
    assert (refreshed.status_code, refreshed.content) == (200, b"")
    assert http.post(f"{account_url(simulator)}/logout", json={"csrf": csrf}).status_code == 200
    after = http.post(
        f"{account_url(simulator)}/agentSession?v=1&NC=true",
        json={"loginData": ""},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    assert after.status_code == 401


# ---- Domain API -----------------------------------------------------------------------------------------------


def test_domain_api_answers_the_single_service_form_by_default(simulator):
    response = requests.get(f"{account_url(simulator)}/service/agentVep/baseURI.json?version=1.0")
    host = simulator.base_url.removeprefix("http://")
    assert response.json() == {"service": "agentVep", "account": simulator.account_id, "baseURI": host}


def test_domain_api_answers_the_base_uris_form_when_switched(simulator):
    simulator.domain_listing = True
    body = requests.get(f"{account_url(simulator)}/service/agentVep/baseURI.json?version=1.0").json()
    services = {entry["service"]: entry["baseURI"] for entry in body["baseURIs"]}
    assert services["agentVep"] == simulator.base_url.removeprefix("http://")
    assert len(services) > 1


# ---- agent resources ------------------------------------------------------------------------------------------


def test_info_describes_the_logged_in_agent_with_numbers_as_strings(shared_simulator, agent):
    http, url = agent
    info = http.get(f"{url}/info").json()["info"]
    profile = shared_simulator.world.agent_by_login(info["loginName"])
    assert info["id"] == profile.agent_id
    assert info["maxChats"] == str(profile.max_chats)
    assert info["link"] == {"@href": f"{url}/info", "@rel": "self"}
    assert set(info["availability"]) == {"chat", "voice"}
    skills = (info["skillsInfo"] or {}).get("skillInfo")
    expected = [{"id": i, "name": n} for i, n in profile.skills]
    assert skills == (None if not expected else expected[0] if len(expected) == 1 else expected)


def test_available_agents_lists_every_agent_with_the_documented_quirks(shared_simulator, agent):
    http, url = agent
    body = http.get(f"{url}/availableAgents").json()["availableAgents"]
    agents = body["agents"]["agent"]
    assert len(agents) == 50
    assert body["link"]["@rel"] == "next" and "timeStamp=" in body["link"]["@href"]
    for item in agents:
        assert all(isinstance(item[k], str) for k in ("@id", "@chatState", "@voiceState", "@maxChats"))
        assert item["elapsedTimeInState"].isdigit() and item["chats"].isdigit()
    skill_shapes = {type((a["skills"] or {}).get("skill")).__name__ for a in agents}
    assert skill_shapes == {"NoneType", "str", "list"}, "null, single id and list all occur"


def test_available_agents_filter_by_skill_and_chat_state(shared_simulator, agent):
    http, url = agent
    skill_name = shared_simulator.world.skills[0][1]
    online = http.get(f"{url}/availableAgents", params={"chatState": "Online"}).json()
    items = online["availableAgents"]["agents"]["agent"]
    items = items if isinstance(items, list) else [items]
    assert items and {a["@chatState"] for a in items} == {"2"}
    with_skill = http.get(f"{url}/availableAgents", params={"skill": skill_name}).json()["availableAgents"]
    listed = with_skill["agents"]["agent"] if with_skill["agents"] else []
    listed = listed if isinstance(listed, list) else [listed]
    expected = {p.agent_id for p in shared_simulator.world.agents if any(n == skill_name for _, n in p.skills)}
    assert {a["@id"] for a in listed} == expected


def test_available_agents_filter_matching_nobody_gives_null_agents(shared_simulator, agent):
    http, url = agent
    body = http.get(f"{url}/availableAgents", params={"skill": "No Such Skill"}).json()
    assert body["availableAgents"]["agents"] is None


def test_available_slots_is_a_number_and_max_wait_time_is_checked(shared_simulator, agent):
    http, url = agent
    assert isinstance(http.get(f"{url}/chat/availableSlots").json()["availableSlots"], int)
    assert http.get(f"{url}/chat/availableSlots", params={"maxWaitTime": "90000"}).status_code == 400


def test_availability_put_overlays_the_world_for_that_agent(simulator, agent):
    http, url = agent
    agent_id = http.get(f"{url}/info").json()["info"]["id"]
    put = http.put(f"{url}/availability", json={"availability": {"chat": "Away"}})
    assert put.status_code == 200
    assert http.get(f"{url}/availability").json()["availability"]["chat"] == "Away"
    listed = http.get(f"{url}/availableAgents").json()["availableAgents"]["agents"]["agent"]
    assert next(a for a in listed if a["@id"] == agent_id)["@chatState"] == "4"
    override = http.post(
        f"{url}/availability", json={"availability": {"chat": "Online"}}, headers={"X-HTTP-Method-Override": "PUT"}
    )
    assert override.json() == {"availability": {"chat": "Online", "voice": override.json()["availability"]["voice"]}}


# ---- chats ----------------------------------------------------------------------------------------------------


def test_chat_sessions_lists_only_the_agents_own_chats_with_links_without_at(shared_simulator):
    profile = agents_with_open_chats(shared_simulator, 1)[0]
    http, url = login_as(shared_simulator, profile)
    listed = http.get(f"{url}/chatSessions").json()["chatSessions"]["chatSession"]
    listed = listed if isinstance(listed, list) else [listed]
    own = {c.chat_id for c in shared_simulator.world.chats_of_agent(profile.agent_id, shared_simulator.clock.now())}
    assert {item["link"]["href"].rsplit("/", 1)[1] for item in listed} == own
    for item in listed:
        assert item["link"]["rel"] == "chat-session" and item["link"]["href"].startswith(f"{url}/chat/")
        assert isinstance(item["startTime"], int) and isinstance(item["chatSessionKey"], str)


def test_chat_of_another_agent_answers_404(shared_simulator):
    mine, theirs = agents_with_open_chats(shared_simulator, 2)
    http, url = login_as(shared_simulator, mine)
    assert http.get(f"{url}/chat/{open_chat_of(shared_simulator, theirs)}").status_code == 404
    assert http.get(f"{url}/chat/no-such-chat").status_code == 404


def test_chat_resource_has_its_links_events_and_info(shared_simulator):
    profile = agents_with_open_chats(shared_simulator, 1)[0]
    http, url = login_as(shared_simulator, profile)
    chat_id = open_chat_of(shared_simulator, profile)
    chat = http.get(f"{url}/chat/{chat_id}").json()["chat"]
    rels = [link["@rel"] for link in chat["link"]]
    assert rels == [
        "self",
        "events",
        "info",
        "next",
        "collaboration-channels",
        "visit-id",
        "transfer",
        "transfer-account",
        "agent-survey",
    ]
    events = chat["events"]["event"]
    events = events if isinstance(events, list) else [events]
    assert events == shared_simulator.truth.chat_events(chat_id, until=shared_simulator.clock.now())
    last_id = int(events[-1]["@id"])
    assert chat["link"][3]["@href"] == f"{url}/chat/{chat_id}?from={last_id + 1}"
    assert chat["info"]["link"][0] == {"@href": f"{url}/chat/{chat_id}/info", "@rel": "self"}
    info = http.get(f"{url}/chat/{chat_id}/info").json()["info"]
    assert info == chat["info"]


def test_polling_from_the_next_link_returns_only_newer_events_and_advances(simulator):
    profile = agents_with_open_chats(simulator, 1)[0]
    http, url = login_as(simulator, profile)
    chat_id = open_chat_of(simulator, profile)
    first = http.get(f"{url}/chat/{chat_id}").json()["chat"]
    next_href = next(link["@href"] for link in first["link"] if link["@rel"] == "next")
    again = http.get(next_href).json()["chat"]
    assert again["events"]["event"] is None, "nothing new while the clock stands still"
    assert next(link["@href"] for link in again["link"] if link["@rel"] == "next") == next_href
    simulator.clock.advance(timedelta(minutes=10).total_seconds())
    later = http.get(next_href).json()["chat"]
    new = later["events"]["event"]
    new = new if isinstance(new, list) else [new]
    cursor = int(next_href.rsplit("=", 1)[1])
    assert new and all(int(e["@id"]) >= cursor for e in new)
    assert next(link["@href"] for link in later["link"] if link["@rel"] == "next").endswith(
        f"?from={int(new[-1]['@id']) + 1}"
    )
    events_only = http.get(f"{url}/chat/{chat_id}/events", params={"from": cursor}).json()["events"]
    assert events_only["event"] == later["events"]["event"]


# ---- clock, stats and admin -----------------------------------------------------------------------------------


def test_date_header_follows_the_simulator_clock(simulator, agent):
    http, url = agent
    assert parsedate_to_datetime(http.get(f"{url}/info").headers["Date"]) == BUSY_HOUR
    simulator.clock.advance(3600)
    assert parsedate_to_datetime(http.get(f"{url}/info").headers["Date"]) == BUSY_HOUR + timedelta(hours=1)


def test_stats_count_logins_agent_sessions_and_requests(simulator):
    username, password = simulator.logins(1)[0]
    http, url = open_agent_session(simulator, username, password)
    open_agent_session(simulator, username, password)
    for _ in range(3):
        http.get(f"{url}/availableAgents")
    assert simulator.stats.logins(username) == 2
    assert simulator.stats.agent_sessions(username) == 2
    assert simulator.stats.requests("availableAgents") == 3
    served = requests.get(f"{simulator.base_url}/_sim/stats").json()
    assert served["logins"][username] == 2 and served["requests"]["availableAgents"] == 3


def test_admin_clock_moves_the_simulated_time(simulator):
    admin = f"{simulator.base_url}/_sim/clock"
    state = requests.post(admin, json={"advance": 90}).json()
    assert state["now"] == (BUSY_HOUR + timedelta(seconds=90)).isoformat()
    assert simulator.clock.now() == BUSY_HOUR + timedelta(seconds=90)


def test_admin_truth_serves_state_history_and_chat_events(shared_simulator):
    profile = agents_with_open_chats(shared_simulator, 1)[0]
    chat_id = open_chat_of(shared_simulator, profile)
    start = (BUSY_HOUR - timedelta(hours=1)).isoformat()
    spans = requests.get(
        f"{shared_simulator.base_url}/_sim/truth/agents", params={"start": start, "end": BUSY_HOUR.isoformat()}
    ).json()
    assert any(span["agent_id"] == profile.agent_id for span in spans)
    events = requests.get(f"{shared_simulator.base_url}/_sim/truth/chat/{chat_id}").json()
    assert events[:1] and events[0]["@id"] == "0"


# ---- lifecycle ------------------------------------------------------------------------------------------------


def test_stop_hangs_up_on_kept_alive_clients_and_start_serves_again_on_the_same_port(simulator, agent):
    http, url = agent
    base = simulator.base_url
    assert http.get(f"{url}/info").status_code == 200
    simulator.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(f"{url}/info")
    simulator.start()
    assert simulator.base_url == base
    assert http.get(f"{url}/info").status_code == 200, "sessions live in the process, not the socket"


def test_standalone_command_prints_its_base_url_and_logins():
    command = [sys.executable, "-m", "pipelines.liveperson.simulator", "--port", "0", "--agents", "20", "--logins", "2"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            base_url = process.stdout.readline().split(" on ", 1)[1].split()[0]
            lines = [process.stdout.readline() for _ in range(3)]
            account = lines[0].rsplit("LP_ACCOUNT_ID=", 1)[1].strip()
            username, password = lines[1].removeprefix("login: ").rstrip("\n").rsplit(" / ", 1)
            login = requests.post(f"{base_url}/api/account/{account}/login?v=1.3",
                                  json={"username": username, "password": password})
            assert login.status_code == 200
            assert lines[2].startswith("login: ")
        finally:
            process.terminate()


def test_oversized_request_bodies_are_refused_with_413(shared_simulator):
    response = requests.post(f"{account_url(shared_simulator)}/login?v=1.3", data=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 413


# ---- the per-request fast path: cached answers follow the world, headers read by hand ------------------------


def test_a_cached_chat_answer_follows_the_info_as_the_clock_moves_without_new_events(simulator):
    """Answers are cached by the chat's info version: typing flags and state still change on the same URL."""
    profile = agents_with_open_chats(simulator, 1)[0]
    http, url = login_as(simulator, profile)
    chat_id = open_chat_of(simulator, profile)
    start = simulator.clock.now()
    infos = set()
    for step_ms in range(0, 60_000, 500):
        simulator.clock.set(at=start + timedelta(milliseconds=step_ms))
        now = simulator.clock.now()
        chat = http.get(f"{url}/chat/{chat_id}", params={"from": 0}).json()["chat"]
        served = {k: v for k, v in chat["info"].items() if k != "link"}
        assert served == simulator.world.chat_info(chat_id, now)
        events = chat["events"]["event"]
        assert len(events if isinstance(events, list) else [events]) == len(simulator.world.chat_events(chat_id, now))
        infos.add((served["lastUpdate"], served["agentTyping"], served["visitorTyping"], served["state"]))
    assert len(infos) > 1, "a minute of a busy chat changes its info"


def test_header_names_are_case_insensitive_and_repeated_cookies_all_count(shared_simulator):
    profile = agents_with_open_chats(shared_simulator, 1)[0]
    http, url = login_as(shared_simulator, profile)
    bearer = http.headers["Authorization"]
    cookies = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    plain = requests.get(f"{url}/info", headers={"authorization": bearer, "ACCEPT": "application/xml",
                                                  "Cookie": cookies})
    assert plain.status_code == 200 and plain.text.startswith("<?xml")
    split = [part.strip() for part in cookies.split(";")]
    raw = (f"GET {url.split(shared_simulator.base_url, 1)[1]}/info HTTP/1.1\r\nHost: x\r\n"
           f"Authorization: {bearer}\r\nCookie: unrelated=1\r\n"
           + "".join(f"Cookie: {part}\r\n" for part in split) + "Connection: close\r\n\r\n")
    assert _raw_request(shared_simulator, raw.encode()).startswith(b"HTTP/1.1 200 OK\r\n")


def test_too_many_or_too_long_header_lines_answer_431_and_bad_request_lines_400(shared_simulator):
    many = "GET / HTTP/1.1\r\n" + "".join(f"X-{n}: 1\r\n" for n in range(101)) + "\r\n"
    assert _raw_request(shared_simulator, many.encode()).startswith(b"HTTP/1.1 431 ")
    long = "GET / HTTP/1.1\r\nX-Long: " + "a" * 70_000 + "\r\n\r\n"
    assert _raw_request(shared_simulator, long.encode()).startswith(b"HTTP/1.1 431 ")
    # as the standard library: an unreadable version is answered the HTTP/0.9 way (no status line)
    assert b"Error code: 400" in _raw_request(shared_simulator, b"GET / HTTP/x.y\r\n\r\n")
    assert b"Error code: 505" in _raw_request(shared_simulator, b"GET / HTTP/2.0\r\n\r\n")


def _raw_request(sim, data: bytes) -> bytes:
    host, port = sim.base_url.split("://", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(data)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
