"""The simulator's HTTP server: routing, authentication checks, fault injection and response caching.

A stdlib ``ThreadingHTTPServer`` with keep-alive; each response goes out as ONE write with Nagle disabled
(PLATFORM.md: two writes on keep-alive stall every response ~22 ms). Encoded payloads are cached per simulated
second (``availableAgents``) and per chat cursor and info version (``ChatEvents.info_version``: a cache hit builds
nothing), and request headers are read by a small parser instead of the email package's, so the server is not what
a throughput benchmark measures (``bench/floor.py`` prints its CPU per request).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import logging
import re
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from pipelines.liveperson.simulator import render
from pipelines.liveperson.simulator.auth import AGENT_COOKIE, SESSION_COOKIE, AgentSession, Auth, LoginRefused
from pipelines.liveperson.simulator.faults import Decision, Faults

log = logging.getLogger(__name__)

CACHE_BUDGET_BYTES = 256 * 1024 * 1024
MAX_BODY_BYTES = 1024 * 1024  # requests to this API are tiny JSON objects
AGENT_SESSION_RESOURCES: list[tuple[str, re.Pattern[str]]] = [
    ("info", re.compile(r"info")),
    ("availability", re.compile(r"availability")),
    ("availableAgents", re.compile(r"availableAgents")),
    ("chat/availableSlots", re.compile(r"chat/availableSlots")),
    ("chatSessions", re.compile(r"chatSessions")),
    ("chat/{chatId}/events", re.compile(r"chat/(?P<chat>[^/]+)/events")),
    ("chat/{chatId}/info", re.compile(r"chat/(?P<chat>[^/]+)/info")),
    ("chat/{chatId}", re.compile(r"chat/(?P<chat>[^/]+)")),
]
ACCOUNT_PATH = re.compile(r"/api/account/(?P<acc>[^/]+)/(?P<rest>.*)")
SESSION_PATH = re.compile(r"agentSession/(?P<sid>[^/]+)(?:/(?P<rest>.*))?")
DOMAIN_PATH = re.compile(r"service/(?:(?P<service>[^/]+)/)?baseURI\.json")


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = render.JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Any
    body: bytes
    fmt: str

    def json(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    def cookies(self) -> dict[str, list[str]]:
        jar: dict[str, list[str]] = {}
        for header in self.headers.get_all("Cookie") or ():
            for part in header.split(";"):
                name, _, value = part.strip().partition("=")
                jar.setdefault(name, []).append(value)
        return jar


class ByteLRU:
    """A thread-safe LRU of encoded bodies, bounded by their total size."""

    def __init__(self, budget: int = CACHE_BUDGET_BYTES) -> None:
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._budget = budget
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, make: Callable[[], bytes]) -> bytes:
        with self._lock:
            body = self._items.get(key)
            if body is not None:
                self._items.move_to_end(key)
                return body
        body = make()
        with self._lock:
            if key not in self._items:
                self._items[key] = body
                self._size += len(body)
                while self._size > self._budget and len(self._items) > 1:
                    self._size -= len(self._items.popitem(last=False)[1])
        return body


class Api:
    """Answers requests against the world at the simulator clock's time; knows nothing about sockets."""

    def __init__(self, world: Any, clock: Any, truth: Any, auth: Auth, faults: Faults, stats: Any) -> None:
        self.world, self.clock, self.truth = world, clock, truth
        self.auth, self.faults, self.stats = auth, faults, stats
        self.account_id = str(world.account_id)
        self.base_url = ""
        self.domain_listing = False
        self._overlay: dict[str, dict[str, Any]] = {}
        self._overlay_version = 0
        self._overlay_lock = threading.Lock()
        self._cache = ByteLRU()

    # ---- entry point ----

    def handle(self, req: Request) -> Response:
        now = self.clock.now()
        if req.path.startswith("/_sim/"):
            return self._admin(req, now)
        match = ACCOUNT_PATH.fullmatch(req.path)
        if match is None or match["acc"] != self.account_id:
            return self._error(404, "Not found", now, req.fmt)
        rest = match["rest"]
        if rest in ("login", "refresh", "logout"):
            return self._guarded(rest, req, now, None, lambda: self._login_service(rest, req, now))
        domain = DOMAIN_PATH.fullmatch(rest)
        if domain and req.method == "GET":
            service = domain["service"] or "agentVep"
            return self._guarded("domain", req, now, None, lambda: self._domain(service, domain["service"] is None))
        if rest == "agentSession" and req.method == "POST":
            return self._guarded("agentSession", req, now, None, lambda: self._open_session(req, now))
        session_match = SESSION_PATH.fullmatch(rest)
        if session_match is None:
            return self._error(404, "Not found", now, req.fmt)
        return self._session_call(req, now, session_match["sid"], session_match["rest"] or "")

    # ---- faults around every API call ----

    def _guarded(
        self, endpoint: str, req: Request, now: datetime, session: AgentSession | None, answer: Callable[[], Response]
    ) -> Response:
        self.stats.count_request(endpoint)
        decision = self.faults.decide(endpoint, now, session.opened_at if session else None)
        if decision.latency_s:
            time.sleep(decision.latency_s)
        early = self._early_fault(decision, req, now, session)
        if early is not None:
            return early
        return self._late_fault(decision, answer(), req)

    def _early_fault(
        self, decision: Decision, req: Request, now: datetime, session: AgentSession | None
    ) -> Response | None:
        fault = decision.fault
        if fault is None or fault.kind in ("truncate", "xml"):
            return None
        if fault.kind == "outage":
            return self._error(503, "Service Unavailable (outage)", now, req.fmt)
        if fault.kind == "server_error":
            return self._error(fault.params["status"], "Internal error", now, req.fmt)
        if fault.kind == "rate_limit":
            response = self._error(429, "Too Many Requests", now, req.fmt)
            response.headers.append(("Retry-After", str(fault.params["retry_after"])))
            return response
        if fault.kind == "html":
            return Response(fault.params["status"], render.html_error_page(fault.params["status"]), render.HTML)
        if fault.kind == "expire_session" and session is not None:
            self.auth.close_agent_session(session.sid)
            return self._error(401, "Agent session expired", now, req.fmt)
        return None

    def _late_fault(self, decision: Decision, response: Response, req: Request) -> Response:
        fault = decision.fault
        if fault is None or response.status >= 300:
            return response
        if fault.kind == "xml" and response.content_type == render.JSON and response.body:
            xml = render.encode(orjson.loads(response.body), render.XML)
            return Response(200, xml, fault.params.get("content_type", render.XML), response.headers)
        if fault.kind == "truncate" and len(response.body) > 1:
            cut = self.faults.cut_point(len(response.body))
            return Response(response.status, response.body[:cut], response.content_type, response.headers)
        return response

    # ---- Login Service and Domain API ----

    def _login_service(self, action: str, req: Request, now: datetime) -> Response:
        if req.method != "POST":
            return self._error(405, "Method not allowed", now, req.fmt)
        body = req.json()
        if action == "login":
            try:
                login = self.auth.login(body)
            except LoginRefused as refused:
                return self._error(refused.status, refused.message, now, req.fmt)
            profile = self.world.agent_by_login(login.username)
            payload = render.login_payload(login, profile, self.account_id, self._host(), now)
            cookie = f"{SESSION_COOKIE}={login.session_id}; Path=/; HttpOnly"
            return Response(200, render.encode(payload, req.fmt), req.fmt, [("Set-Cookie", cookie)])
        session_id = next(iter(req.cookies().get(SESSION_COOKIE, [])), None)
        csrf = body.get("csrf") if isinstance(body, dict) else None
        ok = self.auth.refresh(session_id, csrf) if action == "refresh" else self.auth.logout(session_id, csrf)
        if not ok:
            return self._error(401, "Invalid csrf or session", now, req.fmt)
        return Response(200, b"", req.fmt)

    def _domain(self, service: str, listing_path: bool) -> Response:
        payload = render.domain_payload(service, self.account_id, self._host(), self.domain_listing or listing_path)
        return Response(200, orjson.dumps(payload))

    def _host(self) -> str:
        return self.base_url.split("://", 1)[-1]

    # ---- agent sessions ----

    def _open_session(self, req: Request, now: datetime) -> Response:
        login = self.auth.by_bearer(req.headers.get("Authorization"))
        if login is None:
            return self._error(401, "Missing or invalid bearer", now, req.fmt)
        if not isinstance(req.json(), dict):
            return self._error(400, "Expected a JSON body such as {\"loginData\": \"\"}", now, req.fmt)
        session = self.auth.open_agent_session(login, now)
        url = self._session_url(session.sid)
        path = f"/api/account/{self.account_id}/agentSession/{session.sid}"
        cookie = f"{AGENT_COOKIE}={session.cookie}; Path={path}; HttpOnly"
        payload = render.agent_session_created(url)
        return Response(201, render.encode(payload, req.fmt), req.fmt, [("Set-Cookie", cookie), ("Location", url)])

    def _session_url(self, sid: str) -> str:
        return f"{self.base_url}/api/account/{self.account_id}/agentSession/{sid}"

    def _session_call(self, req: Request, now: datetime, sid: str, rest: str) -> Response:
        endpoint, match = self._resource(rest)
        login = self.auth.by_bearer(req.headers.get("Authorization"))
        session = self.auth.agent_session(sid, login, req.cookies()) if login else None

        def answer() -> Response:
            if session is None:
                return self._error(401, "Unauthorized: invalid bearer or agent session", now, req.fmt)
            if endpoint is None or match is None:
                return self._error(404, "Not found", now, req.fmt)
            return self._resource_call(endpoint, match, req, now, session)

        if endpoint is None and rest == "" and req.method == "DELETE":
            if session is None:
                return self._error(401, "Unauthorized: invalid bearer or agent session", now, req.fmt)
            self.auth.close_agent_session(sid)
            return Response(200, b"", req.fmt)
        return self._guarded(endpoint or "agentSession", req, now, session, answer)

    @staticmethod
    def _resource(rest: str) -> tuple[str | None, re.Match[str] | None]:
        for name, pattern in AGENT_SESSION_RESOURCES:
            match = pattern.fullmatch(rest)
            if match:
                return name, match
        return None, None

    def _resource_call(
        self, endpoint: str, match: re.Match[str], req: Request, now: datetime, session: AgentSession
    ) -> Response:
        method = req.headers.get("X-HTTP-Method-Override", req.method).upper()
        if endpoint == "availability" and method == "PUT":
            return self._set_availability(req, now, session)
        if method != "GET":
            return self._error(405, "Method not allowed", now, req.fmt)
        url = self._session_url(session.sid)
        if endpoint == "info":
            chat, voice = self._availability(session.agent_id, now)
            profile = self.world.agent_at(session.agent_id, now).profile
            return self._ok(render.info_payload(url, profile, chat, voice), req.fmt)
        if endpoint == "availability":
            return self._ok(render.availability_payload(*self._availability(session.agent_id, now)), req.fmt)
        if endpoint == "availableAgents":
            return self._available_agents(req, now, url)
        if endpoint == "chat/availableSlots":
            return self._available_slots(req, now)
        if endpoint == "chatSessions":
            chats = self.world.chats_of_agent(session.agent_id, now)
            return self._ok(render.chat_sessions_payload(url, chats), req.fmt)
        return self._chat(endpoint, unquote(match["chat"]), req, now, session, url)

    def _ok(self, payload: Any, fmt: str) -> Response:
        return Response(200, render.encode(payload, fmt), fmt)

    # ---- availability (with the per-agent overlay set by PUT) ----

    def _availability(self, agent_id: str, now: datetime) -> tuple[str, str]:
        agent = self.world.agent_at(agent_id, now)
        chat, voice = render.state_name(agent.chat_state), render.state_name(agent.voice_state)
        overlay = self._overlay.get(agent_id, {})
        return overlay.get("chat", chat), overlay.get("voice", voice)

    def _set_availability(self, req: Request, now: datetime, session: AgentSession) -> Response:
        body = req.json()
        wanted = body.get("availability") if isinstance(body, dict) else None
        if not isinstance(wanted, dict) or not wanted or not all(isinstance(v, str) for v in wanted.values()):
            return self._error(400, "Expected {\"availability\": {\"chat\": \"Online\"}}", now, req.fmt)
        with self._overlay_lock:
            entry = dict(self._overlay.get(session.agent_id, {}))
            entry.update({k: v for k, v in wanted.items() if k in ("chat", "voice")})
            entry["since"] = now
            self._overlay[session.agent_id] = entry
            self._overlay_version += 1
        return self._ok(render.availability_payload(*self._availability(session.agent_id, now)), req.fmt)

    # ---- account-wide resources ----

    def _available_agents(self, req: Request, now: datetime, session_url: str) -> Response:
        q = req.query
        filters = (q.get("skill"), q.get("chatState"), q.get("voiceState"))
        second = int(now.timestamp())
        key = ("agents", second, filters, req.fmt, session_url, self._overlay_version)

        def make() -> bytes:
            items = [item for agent in self.world.agents_at(now) if (item := self._agent_item(agent, now, filters))]
            next_href = f"{session_url}/availableAgents?timeStamp={second * 1000}"
            return render.encode(render.available_agents_payload(items, next_href), req.fmt)

        return Response(200, self._cache.get_or_make(key, make), req.fmt)

    def _agent_item(self, agent: Any, now: datetime, filters: tuple[str | None, ...]) -> dict[str, Any] | None:
        skill, chat_filter, voice_filter = filters
        profile = agent.profile
        chat_code, voice_code, elapsed = int(agent.chat_state), int(agent.voice_state), agent.elapsed_ms
        overlay = self._overlay.get(profile.agent_id)
        if overlay:
            chat_code = render.STATE_CODES.get(overlay.get("chat", ""), chat_code)
            voice_code = render.STATE_CODES.get(overlay.get("voice", ""), voice_code)
            elapsed = int((now - overlay["since"]).total_seconds() * 1000)
        if skill is not None and all(name != skill for _, name in profile.skills):
            return None
        if chat_filter is not None and render.STATE_CODES.get(chat_filter) != chat_code:
            return None
        if voice_filter is not None and render.STATE_CODES.get(voice_filter) != voice_code:
            return None
        chats = agent.chats if isinstance(agent.chats, int) else len(agent.chats)
        return render.agent_item(profile, chat_code, voice_code, elapsed, chats)

    def _available_slots(self, req: Request, now: datetime) -> Response:
        wait = req.query.get("maxWaitTime")
        if wait is not None and not (wait.isdigit() and 0 <= int(wait) <= 86400):
            return self._error(400, "maxWaitTime must be 0..86400 seconds", now, req.fmt)
        slots = self.world.available_slots(now, req.query.get("skill"), req.query.get("agent"))
        return self._ok(render.available_slots_payload(slots), req.fmt)

    # ---- chat resources (agent-scoped) ----

    def _chat(
        self, endpoint: str, chat_id: str, req: Request, now: datetime, session: AgentSession, url: str
    ) -> Response:
        found = self.world.readable_chat(chat_id, now, session.agent_id)
        if found is None:
            return self._error(404, f"Chat {chat_id} not found in this agent session", now, req.fmt)
        chat, epoch_ms = found
        raw_from = req.query.get("from", "0")
        if not raw_from.isdigit():
            return self._error(400, "from must be a non-negative integer", now, req.fmt)
        from_ = int(raw_from)
        # The key is what the answer is a function of: the chat's info version (events so far, state, typing)
        # stands for the info itself, so a cache hit builds nothing (neither the info nor the event slice).
        version = chat.info_version(epoch_ms)
        timeout_s = self.world.config.chat_timeout_s
        if endpoint == "chat/{chatId}/info":
            key: tuple[Any, ...] = (endpoint, chat_id, url, req.fmt, version)

            def make() -> bytes:
                return render.encode(render.chat_info_payload(url, chat_id, chat.info_at(version, timeout_s)), req.fmt)

        else:
            seen = version[0]
            key = (endpoint, chat_id, url, from_, req.fmt, version if endpoint == "chat/{chatId}" else seen)

            def make() -> bytes:
                events = chat.events[from_:seen]
                if endpoint == "chat/{chatId}/events":
                    return render.encode(render.events_payload(url, chat_id, events, from_), req.fmt)
                info = chat.info_at(version, timeout_s)
                return render.encode(render.chat_payload(url, chat_id, events, from_, info), req.fmt)

        return Response(200, self._cache.get_or_make(key, make), req.fmt)

    # ---- errors ----

    @staticmethod
    def _error(status: int, message: str, now: datetime, fmt: str) -> Response:
        return Response(status, render.encode(render.error_payload(status, message, now), fmt), fmt)

    # ---- admin paths (not part of the real API; no bearer) ----

    def _admin(self, req: Request, now: datetime) -> Response:
        path, body = req.path[len("/_sim/") :], req.json()
        try:
            payload = self._admin_payload(req.method, path, req.query, body if isinstance(body, dict) else {})
        except (KeyError, TypeError, ValueError) as exc:
            return Response(400, orjson.dumps({"error": {"message": str(exc)}}))
        if payload is None:
            return Response(404, orjson.dumps({"error": {"message": f"no admin path {req.path}"}}))
        return Response(200, orjson.dumps(payload, default=str))

    def _admin_payload(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> Any:
        if path == "clock":
            if method == "POST":
                self._set_clock(body)
            return {**self.clock.state(), "now": self.clock.now().isoformat()}
        if path == "faults":
            if method == "DELETE" or (method == "POST" and body.get("clear")):
                self.faults.clear(body.get("endpoint"))
            elif method == "POST":
                self.faults.set(**body)
            return [rule.to_json() for rule in self.faults.rules()]
        if path == "stats":
            return self.stats.to_json()
        if path == "options" and method == "POST":
            self.domain_listing = bool(body.get("domain_listing", self.domain_listing))
            return {"domain_listing": self.domain_listing}
        if path == "expire" and method == "POST":
            return {"expired": self.auth.expire(body.get("username"))}
        if path == "block" and method == "POST":
            self.auth.block(body["username"])
            return {"blocked": body["username"]}
        if path == "truth/agents":
            start, end = _parse_time(query["start"]), _parse_time(query["end"])
            return self.truth.agent_state_history(start, end)
        if path.startswith("truth/chat/"):
            until = _parse_time(query["until"]) if "until" in query else None
            return self.truth.chat_events(unquote(path[len("truth/chat/") :]), until=until)
        return None

    def _set_clock(self, body: dict[str, Any]) -> None:
        changes = {k: body[k] for k in ("speed", "paused") if k in body}
        if "at" in body:
            changes["at"] = _parse_time(body["at"])
        if changes:
            self.clock.set(**changes)
        if "advance" in body:
            self.clock.advance(float(body["advance"]))


def _parse_time(value: str) -> datetime:
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _format(accept: str | None) -> str:
    """XML when the client lists XML before (or without) JSON; JSON otherwise, as the real API defaults."""
    accept = (accept or "").lower()
    xml_at, json_at = accept.find("xml"), accept.find("json")
    return render.XML if xml_at >= 0 and (json_at < 0 or xml_at < json_at) else render.JSON


class Headers:
    """Request headers by case-insensitive name: the ``get``/``get_all`` of ``email.message.Message``, without the
    email parser behind ``http.client.parse_headers`` (that parser was a third of the server's CPU per request)."""

    __slots__ = ("_values",)

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in items:
            self._values.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: Any = None) -> Any:
        values = self._values.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, failobj: Any = None) -> Any:
        return list(self._values.get(name.lower(), ())) or failobj

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values


_MAX_LINE = 65536  # what http.client allows per header line
_MAX_HEADERS = 100  # and how many header lines
_STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}" for status in HTTPStatus}


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive plumbing; every response is one write of headers and body (``sendall``, or ``sendmsg`` of
    both for a large body, so that the cached body is not copied)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: SimulatorHTTPServer

    def parse_request(self) -> bool:
        """``BaseHTTPRequestHandler.parse_request`` with its checks and answers, the header block read by
        ``_read_headers`` instead of the email parser."""
        self.command = None  # type: ignore[assignment]  # as the standard library: set in case of an error
        self.request_version = version = self.default_request_version
        self.close_connection = True
        self.requestline = requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if not words:
            return False
        if len(words) >= 3:
            version = words[-1]
            major, dot, minor = version[5:].partition(".")
            if not (version.startswith("HTTP/") and dot and major.isdigit() and minor.isdigit()
                    and len(major) <= 10 and len(minor) <= 10):
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
                return False
            number = int(major), int(minor)
            if number >= (2, 0):
                self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({version[5:]})")
                return False
            self.close_connection = number < (1, 1)
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, "/" + path.lstrip("/") if path.startswith("//") else path
        try:
            self.headers = _read_headers(self.rfile)  # type: ignore[assignment]
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        expects = self.headers.get("Expect", "").lower() == "100-continue" and self.request_version >= "HTTP/1.1"
        return not expects or self.handle_expect_100()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        raw_length = self.headers.get("Content-Length") or "0"
        if not raw_length.isdigit() or int(raw_length) > MAX_BODY_BYTES:
            if raw_length.isdigit() and int(raw_length) <= 64 * MAX_BODY_BYTES:
                self.rfile.read(int(raw_length))  # drained, so the client reads our answer instead of a reset
            self.close_connection = True
            too_large = Response(413, orjson.dumps({"error": {"message": "body too large"}}))
            self._send(too_large, self.server.api.clock.now())
            return
        body = self.rfile.read(int(raw_length)) if raw_length != "0" else b""
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()} if split.query else {}
        request = Request(self.command, split.path, query, self.headers, body, _format(self.headers.get("Accept")))
        api = self.server.api
        try:
            response = api.handle(request)
        except Exception:
            log.exception("simulator failed on %s %s", self.command, split.path)
            response = Response(500, orjson.dumps({"error": {"message": "simulator internal error"}}))
        self._send(response, api.clock.now())

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def _send(self, response: Response, now: datetime) -> None:
        lines = [
            _STATUS_LINES[response.status],
            _date_header(int(now.timestamp())),
            "Server: liveperson-simulator",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            *(f"{name}: {value}" for name, value in response.headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if len(response.body) < 65536:
            self.wfile.write(head + response.body)
            return
        # One gathered write: the cached body is not copied behind the head (a large body's copy was a fifth of
        # its send); a partial write (a full socket buffer) goes on from where it stopped.
        sent = self.connection.sendmsg([head, response.body])
        if sent < len(head):
            self.connection.sendall(head[sent:] + response.body)
        elif sent < len(head) + len(response.body):
            self.connection.sendall(memoryview(response.body)[sent - len(head) :])

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: access logs would only repeat what ``/_sim/stats`` counts."""


def _read_headers(fp: Any) -> Headers:
    """The header block up to its empty line, with ``http.client``'s limits and errors (answered 431)."""
    items: list[tuple[str, str]] = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return Headers(items)
        if len(items) >= _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and items:  # an obsolete folded continuation line
            name, value = items[-1]
            items[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if colon:
            items.append((name.strip(), value.strip()))


@functools.lru_cache(maxsize=4)
def _date_header(epoch_s: int) -> str:
    """The Date header of a (simulated) second: formatted once, not per response."""
    return f"Date: {format_datetime(datetime.fromtimestamp(epoch_s, UTC), usegmt=True)}"


class SimulatorHTTPServer(ThreadingHTTPServer):
    """Tracks its open keep-alive connections so that stopping really stops answering (an outage is an outage)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-answer (a timeout, a stop) is normal here; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Hang up on every client still connected."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
