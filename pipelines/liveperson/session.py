"""One monitored agent login: its login, its parallel agent session and the cookie jar they share.

The Agent API treats any 401 as expiry: the session logs in again (with username and password; a bearer given
alone is kept), opens a new agent session and replays the request once, on the new session id. A second 401 in a
row is an ``AuthError``. The login is refreshed every 5 minutes of use, as LivePerson asks. Between runs the open
session is kept in the session cache (``session_cache.py``), so that a run every minute reuses it; ``close()``
without ``logout`` leaves it open and cached, ``close(logout=True)`` deletes the parallel agent session we opened
(never the agent's own) and logs out. Several threads may use one ``AgentSession``: renewals are serialised and a
401 seen by many threads renews once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookiejar import Cookie
from typing import Any

import requests

from pipelines.clock import Clock, system_clock
from pipelines.liveperson.config import ApiSettings, Credentials
from pipelines.liveperson.decode import decode_body, read_limited
from pipelines.liveperson.errors import ApiHttpError, ApiUnreachable, AuthError, LoginBlocked, PayloadError
from pipelines.liveperson.parse import parse_agent_session_location, parse_login
from pipelines.liveperson.session_cache import CachedSession, LoginBreaker, SessionCache, cache_key, login_fingerprint
from pipelines.liveperson.transport import make_http_session, mount_login_retry

log = logging.getLogger(__name__)

API_QUERY = {"v": "1", "NC": "true"}
LOGIN_QUERY = {"v": "1.3"}
REFRESH_EVERY_S = 300.0
_WITHHELD = b"<withheld: the login answer holds secrets>"
_COOKIE_FIELDS = ("version", "name", "value", "port", "domain", "path", "secure", "expires", "discard")


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A response read within the size limit: enough to decode it or to dead-letter it."""

    status: int
    body: bytes
    content_type: str | None


class AgentSession:
    """Login + agent session + cookie jar of one monitored agent; ``get()`` is every Agent API read."""

    def __init__(
        self,
        settings: ApiSettings,
        credentials: Credentials,
        *,
        clock: Clock = system_clock,
        cache: SessionCache | None = None,
        breaker: LoginBreaker | None = None,
    ) -> None:
        if settings.base_url is None:
            raise ValueError("settings.base_url is not resolved yet (Domain API lookup happens in connect())")
        self.settings = settings
        self.credentials = credentials
        self.agent_id: str | None = None
        self._base = settings.base_url
        self._clock = clock
        self._cache = cache if cache is not None else SessionCache(settings.state_dir)
        self._breaker = breaker if breaker is not None else LoginBreaker(settings.state_dir)
        self._key = cache_key(settings.account_id, credentials)
        self._fingerprint = login_fingerprint(self._base, settings.account_id, credentials)
        self._verify: bool | str = settings.ca_bundle or True
        self._http = make_http_session(settings)
        mount_login_retry(self._http, self._account_url("login"))
        self._lock = threading.RLock()
        self._generation = 0
        self._bearer: str | None = None
        self._bearer_from_env = False
        self._csrf: str | None = None
        self._login_at = 0.0
        self._ttl_ms: int | None = None
        self._refreshed_at = 0.0
        self._agent_session_id: str | None = None

    def __repr__(self) -> str:
        return f"AgentSession({self.label!r}, agent_session_id={self._agent_session_id!r})"

    @property
    def label(self) -> str:
        return self.credentials.label

    @property
    def agent_session_id(self) -> str | None:
        return self._agent_session_id

    def secret_values(self) -> tuple[str, ...]:
        """The secrets this session holds right now, so that callers can scrub them from anything they store."""
        return tuple(v for v in (self._bearer, self._csrf, self.credentials.password, self.credentials.bearer) if v)

    # --- lifecycle ---

    def open(self) -> None:
        """Make sure a login and an agent session exist: from the cache if still valid, else new ones."""
        if self._agent_session_id is not None:  # every request asks: no file lock (a mkdir and flock) once open
            return
        with self._lock, self._cache.locked(self._key):
            if self._agent_session_id is not None:
                return
            if self._restore():
                log.info("%s: reusing cached agent session", self.label)
                return
            if self.credentials.bearer:
                self._use_env_bearer()  # a 401 on it falls back to the password, when there is one
                self._start_agent_session(just_logged_in=False)
            else:
                self._login()
                self._start_agent_session(just_logged_in=True)

    def close(self, *, logout: bool = False) -> None:
        """End of use. By default the session stays open and cached for the next run; ``logout`` ends it."""
        with self._lock:
            if logout:
                self._logout()
            elif self._agent_session_id is not None:
                self._save()
            self._http.close()

    def get(
        self,
        resource: str,
        *,
        endpoint: str,
        params: Mapping[str, Any] | None = None,
        not_found: type[ApiHttpError] = ApiHttpError,
    ) -> Any:
        """GET ``{agent session}/{resource}`` decoded; a 401 renews the session and replays once.

        The URL is built on the agent session id current at send time, so a replay uses the new session.
        """
        self.open()
        self._refresh_if_due()
        generation = self._generation
        response = self._send_get(resource, params, endpoint)
        if response.status == 401:
            log.info("%s: HTTP 401 on %s: logging in again and replaying once", self.label, endpoint)
            self._renew(generation)
            response = self._send_get(resource, params, endpoint)
            if response.status == 401:
                self._forget()
                raise AuthError(
                    f"{endpoint}: HTTP 401 again right after a new login and agent session for {self.label!r}: "
                    "the API accepts the login but refuses this agent's session"
                )
        if response.status == 404:
            raise not_found("not found", endpoint=endpoint, status=404, body=response.body)
        if response.status >= 400:
            raise ApiHttpError(
                "request failed after retries", endpoint=endpoint, status=response.status, body=response.body
            )
        return decode_body(response.body, response.content_type, endpoint=endpoint, status=response.status)

    # --- requests ---

    def _account_url(self, name: str) -> str:
        return f"{self._base}/api/account/{self.settings.account_id}/{name}"

    def _session_url(self) -> str:
        return self._account_url(f"agentSession/{self._agent_session_id}")

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._bearer}", "Accept": "application/json"}

    def _send(self, method: str, url: str, endpoint: str, **kwargs: Any) -> RawResponse:
        """One request (plus the transport's retries), read within the size limit; never logs headers or bodies."""
        try:
            with self._http.request(
                method, url, timeout=self.settings.timeout_s, verify=self._verify, stream=True, **kwargs
            ) as response:
                try:
                    body = read_limited(response, self.settings.max_response_bytes, endpoint=endpoint)
                except requests.RequestException as exc:
                    raise PayloadError(
                        f"connection broken while reading the body ({type(exc).__name__})",
                        endpoint=endpoint,
                        status=response.status_code,
                        body=b"",
                    ) from None
                log.debug("%s %s -> %s (%d bytes)", method, endpoint, response.status_code, len(body))
                return RawResponse(response.status_code, body, response.headers.get("Content-Type"))
        except requests.exceptions.SSLError as exc:
            raise ApiUnreachable(
                f"{endpoint}: TLS verification failed for {self._base} (give its CA certificate in LP_CA_BUNDLE "
                f"if it is a private CA): {type(exc).__name__}"
            ) from None
        except requests.RequestException as exc:
            raise ApiUnreachable(f"{endpoint}: no answer from {self._base}: {type(exc).__name__}") from None

    def _send_get(self, resource: str, params: Mapping[str, Any] | None, endpoint: str) -> RawResponse:
        with self._lock:
            url = f"{self._session_url()}/{resource}"
            headers = self._auth_headers()
        return self._send("GET", url, endpoint, params={**API_QUERY, **(params or {})}, headers=headers)

    # --- login, agent session, refresh, logout ---

    def _use_env_bearer(self) -> None:
        self._bearer = self.credentials.bearer
        self._bearer_from_env = True
        self._csrf = None
        self._login_at = self._now()
        self._ttl_ms = None

    def _login(self) -> None:
        """POST login; a 401 or 451 opens the login breaker so that the user is not locked out by retries."""
        self._breaker.check(self._fingerprint, self.credentials.username)
        self._http.cookies.clear()
        body = {"username": self.credentials.username, "password": self.credentials.password}
        response = self._send("POST", self._account_url("login"), "login", params=LOGIN_QUERY, json=body)
        if response.status in (401, 451):
            reason = "user blocked by LivePerson" if response.status == 451 else "credentials refused"
            self._breaker.trip(
                self._fingerprint, self.credentials.username, status=response.status, reason=reason, at=self._clock()
            )
            raise LoginBlocked(
                f"login of {self.label!r} refused with HTTP {response.status} ({reason}); the login breaker is now open"
            )
        if response.status != 200:
            raise ApiHttpError("login failed", endpoint="login", status=response.status)
        try:
            result = parse_login(
                decode_body(response.body, response.content_type, endpoint="login", status=response.status)
            )
        except PayloadError as exc:
            raise PayloadError(exc.reason, endpoint="login", status=response.status, body=_WITHHELD) from None
        self._bearer = result.bearer
        self._bearer_from_env = False
        self._csrf = result.csrf
        self._login_at = self._refreshed_at = self._now()
        self._ttl_ms = result.session_ttl_ms
        log.info("%s: logged in", self.label)

    def _start_agent_session(self, *, just_logged_in: bool) -> None:
        """POST agentSession (never retried: a duplicate would leak a session); expects 201 and a location."""
        response = self._send(
            "POST",
            self._account_url("agentSession"),
            "agentSession",
            params=API_QUERY,
            json={"loginData": ""},
            headers=self._auth_headers(),
        )
        if response.status == 401 and not just_logged_in and self.credentials.can_login:
            log.info("%s: HTTP 401 opening an agent session with an older login: logging in again", self.label)
            self._login()
            self._start_agent_session(just_logged_in=True)
            return
        if response.status == 401:
            self._forget()
            raise AuthError(f"agentSession: HTTP 401 for {self.label!r} with a fresh login or the given bearer")
        if response.status != 201:
            raise ApiHttpError(
                "could not open an agent session", endpoint="agentSession", status=response.status, body=response.body
            )
        payload = decode_body(response.body, response.content_type, endpoint="agentSession", status=response.status)
        self._agent_session_id = parse_agent_session_location(payload, endpoint="agentSession")
        self._generation += 1
        log.info("%s: opened agent session", self.label)
        self._save()

    def _renew(self, seen_generation: int) -> None:
        """After a 401: a new login (unless only a bearer was given) and a new agent session, once per expiry."""
        with self._lock, self._cache.locked(self._key):
            if self._generation != seen_generation:
                return  # another thread already renewed after the same expiry
            expired = self._agent_session_id
            self._agent_session_id = None
            if self._restore(unless=expired):
                log.info("%s: adopting the agent session another process opened after the expiry", self.label)
                return
            self._cache.delete(self._key)
            if self.credentials.can_login:
                self._login()
            self._start_agent_session(just_logged_in=True)

    def _refresh_if_due(self) -> None:
        """Keep the login alive every 5 minutes of use (LivePerson's request); a 401 here means it expired."""
        if self._csrf is None or self._now() - self._refreshed_at < REFRESH_EVERY_S:
            return
        with self._lock:
            if self._csrf is None or self._now() - self._refreshed_at < REFRESH_EVERY_S:
                return
            generation = self._generation
            response = self._send("POST", self._account_url("refresh"), "refresh", json={"csrf": self._csrf})
            if response.status == 200:
                self._refreshed_at = self._now()
                self._save()
            elif response.status == 401:
                log.info("%s: refresh refused with HTTP 401: logging in again", self.label)
                self._renew(generation)
            else:
                log.warning("%s: refresh failed with HTTP %s; going on", self.label, response.status)

    def _logout(self) -> None:
        """Delete the parallel agent session we opened, then log out; failures are logged, not raised."""
        if self._agent_session_id is not None:
            self._quietly("DELETE", self._session_url(), "agentSession", params=API_QUERY, headers=self._auth_headers())
        if self._csrf is not None and not self._bearer_from_env:
            self._quietly("POST", self._account_url("logout"), "logout", json={"csrf": self._csrf})
        self._forget()

    def _quietly(self, method: str, url: str, endpoint: str, **kwargs: Any) -> None:
        try:
            response = self._send(method, url, endpoint, **kwargs)
        except ApiUnreachable as exc:
            log.warning("%s: %s", self.label, exc)
            return
        if response.status >= 400:
            log.warning("%s: %s %s answered HTTP %s", self.label, method, endpoint, response.status)

    def _forget(self) -> None:
        """Drop the session here and in the cache: the next use starts with a new login."""
        with self._lock:
            self._agent_session_id = None
            self._bearer = None
            self._csrf = None
            self._http.cookies.clear()
            self._cache.delete(self._key)

    # --- cache ---

    def _now(self) -> float:
        return self._clock().timestamp()

    def _restore(self, unless: str | None = None) -> bool:
        """Take the cached session if it is valid for this server and login (and is not ``unless``, just expired)."""
        entry = self._cache.load(self._key)
        if entry is None or entry.agent_session_id is None or entry.agent_session_id == unless:
            return False
        if entry.base_url != self._base or entry.fingerprint != self._fingerprint or entry.expired(self._clock()):
            self._cache.delete(self._key)
            return False
        bearer = entry.bearer or self.credentials.bearer
        if bearer is None:
            return False
        self._bearer = bearer
        self._bearer_from_env = entry.bearer is None
        self._csrf = entry.csrf
        self._login_at = entry.login_at
        self._ttl_ms = entry.session_ttl_ms
        self._refreshed_at = entry.refreshed_at
        self._agent_session_id = entry.agent_session_id
        self.agent_id = self.agent_id or entry.agent_id
        self._http.cookies.clear()
        for fields in entry.cookies:
            self._http.cookies.set_cookie(_cookie(fields))
        self._generation += 1
        return True

    def _save(self) -> None:
        if self._agent_session_id is None:
            return
        entry = CachedSession(
            base_url=self._base,
            account_id=self.settings.account_id,
            username=self.credentials.username,
            fingerprint=self._fingerprint,
            login_at=self._login_at,
            session_ttl_ms=self._ttl_ms,
            refreshed_at=self._refreshed_at,
            bearer=None if self._bearer_from_env else self._bearer,
            csrf=self._csrf,
            agent_session_id=self._agent_session_id,
            agent_id=self.agent_id,
            cookies=[{name: getattr(c, name) for name in _COOKIE_FIELDS} for c in self._http.cookies],
        )
        self._cache.save(self._key, entry)


def _cookie(fields: Mapping[str, Any]) -> Cookie:
    """A cookie exactly as it was in the jar (host-only cookies stay host-only)."""
    domain = fields["domain"]
    return Cookie(
        version=fields["version"],
        name=fields["name"],
        value=fields["value"],
        port=fields["port"],
        port_specified=fields["port"] is not None,
        domain=domain,
        domain_specified=domain.startswith("."),
        domain_initial_dot=domain.startswith("."),
        path=fields["path"],
        path_specified=True,
        secure=fields["secure"],
        expires=fields["expires"],
        discard=fields["discard"],
        comment=None,
        comment_url=None,
        rest={},
    )
