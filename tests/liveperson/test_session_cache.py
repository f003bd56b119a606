"""Sessions that outlast a run (owner-only cache files) and the login breaker, against the real simulator."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from pipelines.liveperson.client import AgentApiClient
from pipelines.liveperson.config import Credentials
from pipelines.liveperson.errors import LoginBlocked
from pipelines.liveperson.session import AgentSession
from pipelines.liveperson.session_cache import main as session_cache_cli
from tests.fixtures.simulator import open_agent_session
from tests.liveperson.client_support import settings_for


def _run(settings, clock) -> None:
    """One scheduled run: a new client in a new 'process', every login read once, sessions left cached."""
    client = AgentApiClient(settings, clock)
    try:
        for session in client.sessions:
            client.availability(session)
    finally:
        client.close()


def _all_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in folder.rglob("*") if path.is_file())


def test_ten_runs_open_one_login_and_one_agent_session_per_agent(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path, simulator.logins(3))
    for _ in range(10):
        _run(settings, simulator.clock.now)
    for username, _ in simulator.logins(3):
        assert simulator.stats.logins(username) == 1
        assert simulator.stats.agent_sessions(username) == 1
    assert simulator.stats.requests("availability") == 30


def test_cache_files_are_owner_only_and_hold_no_password(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path, simulator.logins(2))
    _run(settings, simulator.clock.now)
    folder = tmp_path / "sessions"
    files = list(folder.glob("*.json"))
    assert len(files) == 2
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert settings.logins[0].password.encode() not in _all_bytes(tmp_path)


def test_a_bearer_from_the_environment_is_never_written(simulator, tmp_path: Path) -> None:
    username, password = simulator.logins(1)[0]
    manual, _ = open_agent_session(simulator, username, password)
    bearer = manual.headers["Authorization"].removeprefix("Bearer ")
    settings = settings_for(simulator, tmp_path)
    for _ in range(3):
        client = AgentApiClient(settings, simulator.clock.now)
        session = AgentSession(settings, Credentials(None, bearer=bearer), clock=simulator.clock.now)
        client.availability(session)
        session.close()
    assert bearer.encode() not in _all_bytes(tmp_path)
    assert simulator.stats.agent_sessions(username) == 2  # the manual one, then ours reused from the cache


def test_a_cached_session_killed_by_the_server_is_renewed_by_the_next_run(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    username = settings.logins[0].username
    _run(settings, simulator.clock.now)
    simulator.expire_sessions(username)
    _run(settings, simulator.clock.now)
    _run(settings, simulator.clock.now)
    assert simulator.stats.logins(username) == 2
    assert simulator.stats.agent_sessions(username) == 2


def test_a_cached_session_past_its_ttl_is_not_tried(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    username = settings.logins[0].username
    _run(settings, simulator.clock.now)
    simulator.clock.advance(8 * 3600 + 1)  # the simulator's sessionTTl is 8 h
    _run(settings, simulator.clock.now)
    assert simulator.stats.logins(username) == 2
    assert simulator.stats.requests("availability") == 2  # no request was wasted on the stale session


def test_a_cache_of_another_server_is_not_sent_there(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    _run(settings, simulator.clock.now)
    from tests.fixtures.simulator import make_simulator

    other = make_simulator()
    try:
        _run(settings_for(other, tmp_path), other.clock.now)
        assert other.stats.requests("availability") == 1
        assert other.stats.logins(settings.logins[0].username) == 1
    finally:
        other.stop()


def test_login_breaker_opens_after_451_and_no_further_login_reaches_the_server(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    username = settings.logins[0].username
    simulator.block_user(username)
    for _ in range(3):
        with pytest.raises(LoginBlocked, match=username):
            _run(settings, simulator.clock.now)
    assert simulator.stats.requests("login") == 1
    (breaker,) = (tmp_path / "breakers").glob("*.json")
    assert stat.S_IMODE(breaker.stat().st_mode) == 0o600


def test_login_breaker_opens_after_401_and_closes_when_the_password_changes(simulator, tmp_path: Path) -> None:
    username, password = simulator.logins(1)[0]
    wrong = settings_for(simulator, tmp_path, [(username, "wrong-password")])
    for _ in range(3):
        with pytest.raises(LoginBlocked):
            _run(wrong, simulator.clock.now)
    assert simulator.stats.requests("login") == 1
    assert b"wrong-password" not in _all_bytes(tmp_path)
    _run(settings_for(simulator, tmp_path, [(username, password)]), simulator.clock.now)
    assert simulator.stats.logins(username) == 2  # login attempts: the refused one, then the corrected one


def test_operator_reset_of_the_breaker_lets_the_login_through(simulator, tmp_path: Path, capsys) -> None:
    settings = settings_for(simulator, tmp_path)
    username = settings.logins[0].username
    simulator.block_user(username)
    with pytest.raises(LoginBlocked):
        _run(settings, simulator.clock.now)
    simulator.unblock_user(username)
    with pytest.raises(LoginBlocked):
        _run(settings, simulator.clock.now)
    assert session_cache_cli(["--reset-breaker", username, "--state-dir", str(tmp_path)]) == 0
    assert "closed 1" in capsys.readouterr().out
    _run(settings, simulator.clock.now)
    assert simulator.stats.logins(username) == 2  # login attempts: the blocked one, then after the reset
    assert session_cache_cli(["--reset-breaker", username, "--state-dir", str(tmp_path)]) == 1


def test_a_blocked_login_does_not_stop_the_other_agents(simulator, tmp_path: Path) -> None:
    logins = simulator.logins(2)
    simulator.block_user(logins[0][0])
    client = AgentApiClient(settings_for(simulator, tmp_path, logins), simulator.clock.now)
    assert len(client.available_agents().agents) == 50
    assert client.healthy_session().credentials.username == logins[1][0]


def test_runs_starting_together_share_one_login(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    start = threading.Barrier(4)

    def run() -> None:
        start.wait()
        _run(settings, simulator.clock.now)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert simulator.stats.logins(settings.logins[0].username) == 1
    assert simulator.stats.agent_sessions(settings.logins[0].username) == 1


def test_a_run_meeting_an_expiry_another_run_already_renewed_adopts_its_session(simulator, tmp_path: Path) -> None:
    settings = settings_for(simulator, tmp_path)
    username = settings.logins[0].username
    first, second = AgentApiClient(settings, simulator.clock.now), AgentApiClient(settings, simulator.clock.now)
    first.availability()
    second.availability()
    simulator.expire_sessions(username)
    first.availability()
    second.availability()
    assert first.sessions[0].agent_session_id == second.sessions[0].agent_session_id
    assert simulator.stats.logins(username) == 2
    assert simulator.stats.agent_sessions(username) == 2
