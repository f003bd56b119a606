"""Logins, bearers, csrf, agent sessions and their cookies, and the per-user counters tests assert on.

Kept apart from the HTTP plumbing so that expiry and blocking (what the client's re-login logic is tested
against) have one owner. Tokens are random, never logged; the world decides who may log in.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

SESSION_COOKIE = "Session_id"
AGENT_COOKIE = "LPAgentSession"


class LoginRefused(Exception):
    """A login that must be answered with ``status`` (400 bad body, 401 bad credentials, 451 blocked)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    agent_id: str
    bearer: str = field(repr=False)
    csrf: str = field(repr=False)
    session_id: str = field(repr=False)
    wsuk: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AgentSession:
    sid: str
    username: str
    agent_id: str
    cookie: str = field(repr=False)
    opened_at: datetime


class Stats:
    """Request and login counters: how tests see that a client reused a session instead of logging in again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logins: Counter[str] = Counter()
        self._agent_sessions: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()

    def count_login(self, username: str) -> None:
        with self._lock:
            self._logins[username] += 1

    def count_agent_session(self, username: str) -> None:
        with self._lock:
            self._agent_sessions[username] += 1

    def count_request(self, endpoint: str) -> None:
        with self._lock:
            self._requests[endpoint] += 1

    def logins(self, username: str) -> int:
        """Login attempts by ``username``, refused ones included."""
        return self._logins[username]

    def agent_sessions(self, username: str) -> int:
        """Agent sessions opened by ``username``."""
        return self._agent_sessions[username]

    def requests(self, endpoint: str) -> int:
        """Requests to a resource name (``availableAgents``, ``chat/{chatId}`` ...), faulted ones included."""
        return self._requests[endpoint]

    def to_json(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                "logins": dict(self._logins),
                "agent_sessions": dict(self._agent_sessions),
                "requests": dict(self._requests),
            }


class Auth:
    """Who is logged in, with which bearer, and which agent sessions are open. Thread-safe."""

    def __init__(self, credentials: dict[str, tuple[str, str]], stats: Stats) -> None:
        """``credentials`` maps a login name to ``(password, agent_id)``."""
        self._credentials = credentials
        self._stats = stats
        self._lock = threading.Lock()
        self._by_bearer: dict[str, Login] = {}
        self._by_session_id: dict[str, Login] = {}
        self._agent_sessions: dict[str, AgentSession] = {}
        self._blocked: set[str] = set()

    def login(self, body: object) -> Login:
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) or "password" not in body:
            raise LoginRefused(400, "Bad request: expected username and password")
        username = body["username"]
        self._stats.count_login(username)
        if username in self._blocked:
            raise LoginRefused(451, "User is blocked")
        known = self._credentials.get(username)
        if known is None or not secrets.compare_digest(str(body["password"]), known[0]):
            raise LoginRefused(401, "Bad credentials")
        login = Login(
            username=username,
            agent_id=known[1],
            bearer=secrets.token_urlsafe(32),
            csrf=secrets.token_hex(16),
            session_id=secrets.token_hex(16),
            wsuk=secrets.token_hex(8),
        )
        with self._lock:
            self._by_bearer[login.bearer] = login
            self._by_session_id[login.session_id] = login
        return login

    def by_bearer(self, authorization: str | None) -> Login | None:
        """The login behind an ``Authorization: Bearer ...`` header, if it is still valid."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return self._by_bearer.get(authorization[7:].strip())

    def refresh(self, session_id: str | None, csrf: object) -> bool:
        login = self._by_session_id.get(session_id or "")
        return login is not None and isinstance(csrf, str) and secrets.compare_digest(csrf, login.csrf)

    def logout(self, session_id: str | None, csrf: object) -> bool:
        """End a login: its bearer stops working at once."""
        if not self.refresh(session_id, csrf):
            return False
        with self._lock:
            login = self._by_session_id.pop(session_id or "", None)
            if login is not None:
                self._by_bearer.pop(login.bearer, None)
        return True

    def open_agent_session(self, login: Login, now: datetime) -> AgentSession:
        session = AgentSession(secrets.token_hex(10), login.username, login.agent_id, secrets.token_hex(16), now)
        with self._lock:
            self._agent_sessions[session.sid] = session
        self._stats.count_agent_session(login.username)
        return session

    def agent_session(self, sid: str, login: Login, cookies: dict[str, list[str]]) -> AgentSession | None:
        """The open agent session ``sid`` if it belongs to ``login`` and its scoped cookie came back."""
        session = self._agent_sessions.get(sid)
        if session is None or session.username != login.username:
            return None
        if not any(secrets.compare_digest(v, session.cookie) for v in cookies.get(AGENT_COOKIE, ())):
            return None
        return session

    def close_agent_session(self, sid: str) -> None:
        with self._lock:
            self._agent_sessions.pop(sid, None)

    def expire(self, username: str | None = None) -> int:
        """Kill agent sessions and bearers (of one user, or all): their next call answers 401. Returns how many."""
        with self._lock:
            dead_sessions = [s for s in self._agent_sessions.values() if username in (None, s.username)]
            dead_logins = [x for x in self._by_bearer.values() if username in (None, x.username)]
            for session in dead_sessions:
                del self._agent_sessions[session.sid]
            for login in dead_logins:
                self._by_bearer.pop(login.bearer, None)
                self._by_session_id.pop(login.session_id, None)
        return len(dead_sessions) + len(dead_logins)

    def block(self, username: str) -> None:
        """From now on, logins of ``username`` answer 451."""
        with self._lock:
            self._blocked.add(username)

    def unblock(self, username: str) -> None:
        with self._lock:
            self._blocked.discard(username)
