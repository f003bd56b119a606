"""The client against the simulator's ground truth: every resource, several logins, chats polled incrementally."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from pipelines.liveperson.client import AgentApiClient
from pipelines.liveperson.connect import connect, lookup_host
from pipelines.liveperson.errors import ChatNotFound
from tests.liveperson.client_support import logins_with_chats, ongoing_chat, settings_for


def _event_ids(events: list[dict]) -> list[int]:
    return [int(e["@id"] if "@id" in e else e["id"]) for e in events]


def test_available_agents_equal_the_world_at_the_paused_clock(shared_simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(shared_simulator, tmp_path), shared_simulator.clock.now)
    page = client.available_agents()
    truth = shared_simulator.world.agents_at(shared_simulator.clock.now())
    expected = sorted((a.profile.agent_id, a.chat_state, a.profile.max_chats, a.chats, a.elapsed_ms) for a in truth)
    got = sorted((a.agent_id, a.chat_state_code, a.max_chats, a.chats, a.elapsed_in_state_ms) for a in page.agents)
    assert got == expected


def test_available_agents_filter_by_chat_state(shared_simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(shared_simulator, tmp_path), shared_simulator.clock.now)
    online = client.available_agents(chat_state="Online")
    truth = {
        a.profile.agent_id for a in shared_simulator.world.agents_at(shared_simulator.clock.now()) if a.chat_state == 2
    }
    assert {a.agent_id for a in online.agents} == truth


def test_available_slots_equal_the_world(shared_simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(shared_simulator, tmp_path), shared_simulator.clock.now)
    assert client.available_slots() == shared_simulator.world.available_slots(shared_simulator.clock.now())


def test_info_names_the_logged_in_agent_and_sets_the_sessions_agent_id(shared_simulator, tmp_path: Path) -> None:
    logins = shared_simulator.logins(2)
    client = AgentApiClient(settings_for(shared_simulator, tmp_path, logins), shared_simulator.clock.now)
    for session, (username, _) in zip(client.sessions, logins, strict=True):
        profile = shared_simulator.world.agent_by_login(username)
        info = client.info(session)
        assert (info.agent_id, info.max_chats) == (profile.agent_id, profile.max_chats)
        assert session.agent_id == profile.agent_id
        assert client.availability(session) == info.availability


def test_several_logins_side_by_side_each_see_only_their_own_chats(shared_simulator, tmp_path: Path) -> None:
    found = logins_with_chats(shared_simulator, 3)
    client = AgentApiClient(
        settings_for(shared_simulator, tmp_path, [(u, p) for u, p, _ in found]), shared_simulator.clock.now
    )
    seen = [sorted(ref.chat_id for ref in client.chat_sessions(session)) for session in client.sessions]
    assert seen == [sorted(chats) for _, _, chats in found]
    assert len({chat for chats in seen for chat in chats}) == sum(len(chats) for chats in seen)


def test_polling_a_chat_from_the_start_returns_its_events_so_far_and_its_info(shared_simulator, tmp_path: Path) -> None:
    username, password, chats = logins_with_chats(shared_simulator, 1)[0]
    client = AgentApiClient(
        settings_for(shared_simulator, tmp_path, [(username, password)]), shared_simulator.clock.now
    )
    now = shared_simulator.clock.now()
    for chat_id in chats:
        chat = client.poll_chat(client.sessions[0], chat_id, 0)
        assert [e.event_id for e in chat.events] == _event_ids(shared_simulator.truth.chat_events(chat_id, until=now))
        assert chat.info is not None and chat.info.state == shared_simulator.world.chat_info(chat_id, now)["state"]
        assert chat.next_from == chat.events[-1].event_id + 1


def test_incremental_polls_from_next_from_have_no_gaps_and_no_duplicates(simulator, tmp_path: Path) -> None:
    username, password, chat_id = ongoing_chat(simulator)
    client = AgentApiClient(settings_for(simulator, tmp_path, [(username, password)]), simulator.clock.now)
    (session,) = client.sessions
    first = client.poll_chat(session, chat_id, 0)
    collected = [e.event_id for e in first.events]
    cursor = first.next_from
    for _ in range(4):
        simulator.clock.advance(120)
        polled = client.poll_chat(session, chat_id, cursor)
        assert all(e.event_id >= cursor for e in polled.events)
        collected += [e.event_id for e in polled.events]
        cursor = polled.next_from if polled.next_from is not None else cursor
    truth = _event_ids(simulator.truth.chat_events(chat_id, until=simulator.clock.now()))
    assert len(truth) > len(first.events)  # the chat moved on while we polled
    assert collected == truth


def test_chat_events_and_chat_info_agree_with_the_chat_resource(shared_simulator, tmp_path: Path) -> None:
    username, password, chats = logins_with_chats(shared_simulator, 1)[0]
    client = AgentApiClient(
        settings_for(shared_simulator, tmp_path, [(username, password)]), shared_simulator.clock.now
    )
    (session,) = client.sessions
    chat = client.poll_chat(session, chats[0], 0)
    events, next_from = client.chat_events(session, chats[0], 0)
    assert [e.event_id for e in events] == [e.event_id for e in chat.events]
    assert next_from == chat.next_from
    later, _ = client.chat_events(session, chats[0], chat.next_from)
    assert later == []
    assert client.chat_info(session, chats[0]).state == chat.info.state


def test_a_poll_after_expiry_is_replayed_on_the_new_agent_session(simulator, tmp_path: Path) -> None:
    username, password, chats = logins_with_chats(simulator, 1)[0]
    client = AgentApiClient(settings_for(simulator, tmp_path, [(username, password)]), simulator.clock.now)
    (session,) = client.sessions
    before = client.poll_chat(session, chats[0], 0)
    old_session_id = session.agent_session_id
    simulator.expire_sessions(username)
    after = client.poll_chat(session, chats[0], 0)
    assert session.agent_session_id != old_session_id
    assert after.events == before.events
    assert old_session_id not in after.links.get("self", "")


def test_poll_chats_answers_every_request_and_isolates_a_missing_chat(simulator, tmp_path: Path) -> None:
    found = logins_with_chats(simulator, 3)
    client = AgentApiClient(settings_for(simulator, tmp_path, [(u, p) for u, p, _ in found]), simulator.clock.now)
    wanted = [
        (session, chat, 0) for session, (_, _, chats) in zip(client.sessions, found, strict=True) for chat in chats
    ]
    wanted.append((client.sessions[0], "H-missing", 0))
    results = dict(((s.label, c), r) for (s, c, _), r in client.poll_chats(wanted))
    assert set(results) == {(s.label, c) for s, c, _ in wanted}
    assert isinstance(results[(client.sessions[0].label, "H-missing")], ChatNotFound)
    for session, chat_id, _ in wanted[:-1]:
        truth = _event_ids(simulator.truth.chat_events(chat_id, until=simulator.clock.now()))
        assert [e.event_id for e in results[(session.label, chat_id)].events] == truth
    assert simulator.stats.logins(found[0][0]) == 1  # sessions open once, even under concurrent first use


def test_poll_chats_keeps_at_most_max_workers_requests_in_flight(simulator, tmp_path: Path) -> None:
    username, password, chats = logins_with_chats(simulator, 1)[0]
    client = AgentApiClient(settings_for(simulator, tmp_path, [(username, password)]), simulator.clock.now)
    client.healthy_session()
    simulator.faults.set(endpoint="chat/{chatId}", kind="latency", ms=150)
    wanted = [(client.sessions[0], chats[0], 0)] * 6
    started = time.monotonic()
    assert len(list(client.poll_chats(wanted, max_workers=2))) == 6
    assert time.monotonic() - started >= 3 * 0.15  # 6 requests, 2 at a time, each held 150 ms by the server


def test_chat_sessions_is_called_at_most_every_two_seconds_per_session(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    started = time.monotonic()
    client.chat_sessions()
    client.chat_sessions()
    assert time.monotonic() - started >= 2.0
    assert simulator.stats.requests("chatSessions") == 2


def test_the_client_never_imports_the_simulator() -> None:
    code = (
        "import sys, pipelines.liveperson.client, pipelines.liveperson.connect; "
        "print(sorted(m for m in sys.modules if m.startswith('pipelines.liveperson.simulator')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- connect ---


def test_connect_without_configuration_starts_and_stops_the_embedded_simulator(tmp_path: Path) -> None:
    env = {"LP_STATE_DIR": str(tmp_path), "LP_SIMULATOR_LOGINS": "2", "LP_STORE_CHAT_TEXT": "true"}
    with connect(env) as conn:
        assert conn.source == "simulator" and conn.simulator is not None
        assert conn.settings.store_chat_text is True and len(conn.client.sessions) == 2
        assert len(conn.client.available_agents().agents) == 50
        base_url = conn.simulator.base_url
        assert abs((conn.clock() - conn.simulator.clock.now()).total_seconds()) < 5
    with pytest.raises(requests.ConnectionError):
        requests.get(base_url, timeout=2)


def test_connect_with_a_running_simulator_uses_its_clock_and_leaves_it_running(simulator, tmp_path: Path) -> None:
    with connect({"LP_STATE_DIR": str(tmp_path)}, simulator=simulator) as conn:
        assert conn.clock() == simulator.clock.now()
        conn.client.info()
    assert len(AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now).available_agents().agents) == 50


def test_connect_with_a_configured_account_reads_it_over_http(simulator, tmp_path: Path) -> None:
    username, password = simulator.logins(1)[0]
    env = {
        "LP_BASE_URL": simulator.base_url,
        "LP_ACCOUNT_ID": simulator.account_id,
        "LP_USERNAME": username,
        "LP_PASSWORD": password,
        "LP_STATE_DIR": str(tmp_path),
    }
    with connect(env) as conn:
        assert conn.simulator is None and conn.source == "127.0.0.1"
        assert conn.client.info().agent_id == simulator.world.agent_by_login(username).agent_id


@pytest.mark.parametrize("listing", [False, True])
def test_domain_api_lookup_reads_both_answer_forms(simulator, tmp_path: Path, listing: bool) -> None:
    simulator.domain_listing = listing
    host = lookup_host(settings_for(simulator, tmp_path), domain_api=simulator.base_url)
    assert simulator.base_url.endswith(host)
