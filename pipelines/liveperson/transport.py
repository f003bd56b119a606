"""HTTP transport shaped to LivePerson's published retry policy, delegated to ``urllib3.Retry``.

The policy: never retry a 4xx other than 429; after a 429 wait Retry-After and at least 1 s; retry a 5xx three times
after 5, 10 and 15 s (``base`` x1, x2, x3; tests shrink the base). Only idempotent methods are retried on a status
or a broken read: the agent-session POST must never be sent twice (each success opens a session that would leak),
and the login POST gets its own adapter that retries a 429 only, after 5 s. Connection errors before anything was
sent are safe to retry for any method.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from pipelines.liveperson.config import ApiSettings

SERVER_ERRORS = frozenset(range(500, 600))
RATE_LIMITED = 429
MIN_WAIT_AFTER_429_S = 1.0
LOGIN_WAIT_AFTER_429_S = 5.0
# A longer Retry-After is cut to this: one request never holds a run for longer.
MAX_RETRY_AFTER_S = 120
RETRIED_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class LivePersonRetry(Retry):
    """``Retry`` with LivePerson's pauses: linear ``base`` x n for 5xx (capped at x3), a floor after a 429."""

    def __init__(
        self, *args: Any, retry_base_s: float = 5.0, min_wait_after_429_s: float = MIN_WAIT_AFTER_429_S, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.retry_base_s = retry_base_s
        self.min_wait_after_429_s = min_wait_after_429_s

    @classmethod
    def for_api(cls, retry_base_s: float) -> LivePersonRetry:
        """Agent API reads: 5xx and 429 three times, a broken connection twice, a broken read once."""
        return cls(
            total=None,
            connect=2,
            read=1,
            status=3,
            other=0,
            redirect=0,
            status_forcelist=SERVER_ERRORS | {RATE_LIMITED},
            allowed_methods=RETRIED_METHODS,
            respect_retry_after_header=True,
            raise_on_status=False,
            retry_base_s=retry_base_s,
        )

    @classmethod
    def for_login(cls) -> LivePersonRetry:
        """The login POST: a 429 is retried twice, each after at least 5 s; nothing else is retried."""
        return cls(
            total=None,
            connect=2,
            read=0,
            status=2,
            other=0,
            redirect=0,
            status_forcelist={RATE_LIMITED},
            allowed_methods=frozenset({"POST"}),
            respect_retry_after_header=True,
            raise_on_status=False,
            min_wait_after_429_s=LOGIN_WAIT_AFTER_429_S,
        )

    def new(self, **kw: Any) -> LivePersonRetry:
        retry = super().new(**kw)
        retry.retry_base_s = self.retry_base_s
        retry.min_wait_after_429_s = self.min_wait_after_429_s
        return retry

    def get_backoff_time(self) -> float:
        """Pause before the next attempt when the server gave no usable Retry-After."""
        if not self.history:
            return 0.0
        if self.history[-1].status == RATE_LIMITED:
            return self.min_wait_after_429_s
        consecutive = 0
        for attempt in reversed(self.history):
            if attempt.redirect_location is not None:
                break
            consecutive += 1
        return self.retry_base_s * min(consecutive, 3)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """Retry-After as sent, at most 120 s, and never less than the floor after a 429 (avoid bursts)."""
        seconds = super().get_retry_after(response)
        if seconds is None:
            return None
        if response.status == RATE_LIMITED:
            seconds = max(seconds, self.min_wait_after_429_s)
        return min(seconds, MAX_RETRY_AFTER_S)


class ApiHttpSession(requests.Session):
    """A ``requests.Session`` that reads the environment once instead of on every request.

    With ``trust_env`` (kept: proxies and the CA bundle still come from the environment), ``requests`` scans every
    environment variable twice per request for proxies and looks for a ``~/.netrc``: measured 15% of a chat poll's
    client CPU. Here the proxy variables are read at the first request to a host and ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` when the session is made; ``.netrc`` is never consulted: an entry for the API host would
    have replaced the bearer with Basic auth (``auth`` is a no-op callable, which stops ``requests`` looking).
    """

    def __init__(self) -> None:
        super().__init__()
        self.auth = _keep_headers
        self._environment: dict[tuple[str, str, str | None], dict[str, str]] = {}
        self._environment_lock = threading.Lock()
        self._env_ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")

    def merge_environment_settings(
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if self.trust_env:
            no_proxy = proxies.get("no_proxy") if proxies is not None else None
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc, no_proxy)
            env_proxies = self._environment.get(key)
            if env_proxies is None:
                with self._environment_lock:
                    env_proxies = self._environment[key] = get_environ_proxies(url, no_proxy=no_proxy)
            if proxies is not None:
                for name, value in env_proxies.items():
                    proxies.setdefault(name, value)
            if verify is True or verify is None:
                verify = self._env_ca_bundle or verify
        return {
            "proxies": merge_setting(proxies, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": merge_setting(verify, self.verify),
            "cert": merge_setting(cert, self.cert),
        }


def _keep_headers(request: Any) -> Any:
    """Auth that changes nothing: the Agent API's bearer is set as a header by the caller."""
    return request


def make_http_session(settings: ApiSettings) -> requests.Session:
    """A ``requests.Session`` (one cookie jar) whose pooled adapter retries by LivePerson's policy.

    TLS verification is always on, with the configured CA bundle when one is given. The pool holds as many
    connections as chats are polled at once, so that concurrent polls of one agent session reuse connections.
    """
    session = ApiHttpSession()
    adapter = HTTPAdapter(
        max_retries=LivePersonRetry.for_api(settings.retry_base_s),
        pool_connections=4,
        pool_maxsize=max(settings.chat_concurrency, 1),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = settings.ca_bundle or True
    return session


def mount_login_retry(session: requests.Session, login_url: str) -> None:
    """Give the login URL its own adapter: a 429 is retried after 5 s, any other answer is returned at once."""
    session.mount(login_url, HTTPAdapter(max_retries=LivePersonRetry.for_login(), pool_connections=1, pool_maxsize=1))
