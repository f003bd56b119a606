"""Typed errors of the API layer.

Every failure that reaches the pipeline is one of these, so that a run can decide between "dead-letter and go
on" (``PayloadError``) and "stop and say why" (the rest). None of them ever carries a secret.
"""

from __future__ import annotations


class LivePersonError(Exception):
    """Base of every error raised by the API layer."""


class ConfigError(LivePersonError):
    """The environment describes no usable connection (e.g. partial configuration); names what is missing."""


class PayloadError(LivePersonError):
    """A response that arrived but cannot be read: HTML, XML bomb, truncated, wrong shape, too large.

    Carries what the dead-letter table needs: the endpoint (a resource name such as ``chat/{chatId}``), the HTTP
    status, and the raw body exactly as received.
    """

    def __init__(self, message: str, *, endpoint: str, status: int | None, body: bytes) -> None:
        super().__init__(f"{endpoint}: {message} (HTTP {status})")
        self.reason = message
        self.endpoint = endpoint
        self.status = status
        self.body = body


class ResponseTooLarge(PayloadError):
    """The body exceeded the configured limit while streaming; only its first bytes are kept."""


class ApiHttpError(LivePersonError):
    """An HTTP error status that retries did not cure (or that must not be retried)."""

    def __init__(self, message: str, *, endpoint: str, status: int, body: bytes = b"") -> None:
        super().__init__(f"{endpoint}: {message} (HTTP {status})")
        self.endpoint = endpoint
        self.status = status
        self.body = body


class ChatNotFound(ApiHttpError):
    """404 on a chat resource: the chat is gone from this agent session's scope."""


class AuthError(LivePersonError):
    """Authentication failed for good: a second 401 in a row after re-login, or credentials refused."""


class LoginBlocked(AuthError):
    """The login breaker is open for this login (an earlier 401/451 on login); an operator must reset it."""


class ApiUnreachable(LivePersonError):
    """No HTTP answer at all after retries: connection refused or reset, timeout, or TLS verification failed."""
