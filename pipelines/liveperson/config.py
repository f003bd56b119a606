"""Connection settings from the environment, exactly as the data contract's Configuration table names them.

The embedded simulator is used only when no ``LP_*`` connection variable is set at all; a partial configuration is
a start-up error naming what is missing, never a silent fall-back to simulated data. Secrets live in fields with
``repr=False`` so that a logged settings object never shows them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from pipelines.liveperson.decode import DEFAULT_MAX_RESPONSE_BYTES
from pipelines.liveperson.errors import ConfigError

# LP_CHAT_CONCURRENCY: chat polls in flight. Polling is latency-bound against the real API: at 50 ms a request,
# one poll of 500 chats takes 500 x 50 ms / N, so 2 s needs N >= 13 before any processing (bench/latency.py
# measured 3.6 s at 8, 2.3 s at 16, 1.7 s at 32). Each agent session's connection pool is sized to match (every
# thread keeps its connection), each chat URL is still read once per run, and the chat step holds at most
# 2 x N polled chats in memory (bench/memory.py: peak RSS within 400 MB at 32).
DEFAULT_CHAT_CONCURRENCY = 32

CONNECTION_VARIABLES = (
    "LP_DOMAIN",
    "LP_BASE_URL",
    "LP_ACCOUNT_ID",
    "LP_USERNAME",
    "LP_PASSWORD",
    "LP_BEARER_TOKEN",
    "LP_AGENT_LOGINS",
)
SIMULATOR_SOURCE = "simulator"
_LOGIN_KEYS = ("username", "password")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class Credentials:
    """One monitored agent login: username and password, a bearer, or both (the bearer is tried first)."""

    username: str | None
    password: str | None = field(default=None, repr=False)
    bearer: str | None = field(default=None, repr=False)

    @property
    def can_login(self) -> bool:
        return bool(self.username and self.password)

    @property
    def label(self) -> str:
        """How logs name this login: the username, never a secret."""
        return self.username or "<bearer from LP_BEARER_TOKEN>"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Everything the client needs; ``base_url`` is None until the Domain API lookup has named the host."""

    account_id: str
    logins: tuple[Credentials, ...]
    base_url: str | None = None
    simulated: bool = False
    state_dir: Path = Path("data/state")
    store_chat_text: bool = False
    timeout_s: float = 30.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    ca_bundle: str | None = None
    retry_base_s: float = 5.0
    chat_concurrency: int = DEFAULT_CHAT_CONCURRENCY

    @property
    def source(self) -> str:
        """``snapshot_run.source``: ``simulator`` or the API host."""
        if self.simulated:
            return SIMULATOR_SOURCE
        return urlsplit(self.base_url).hostname or "" if self.base_url else ""

    def with_host(self, host: str) -> ApiSettings:
        """These settings pointed at ``https://{host}`` (after the Domain API lookup)."""
        return replace(self, base_url=f"https://{host}")


def settings_from_env(env: Mapping[str, str]) -> ApiSettings | None:
    """Settings for the real API, or None when nothing is configured (the embedded simulator is used then)."""
    given = {name for name in CONNECTION_VARIABLES if env.get(name, "").strip()}
    if not given:
        return None
    missing: list[str] = []
    account_id = env.get("LP_ACCOUNT_ID", "").strip()
    if not account_id:
        missing.append("LP_ACCOUNT_ID")
    logins = _logins(env, missing)
    if missing:
        raise ConfigError(
            f"incomplete LivePerson configuration (set: {', '.join(sorted(given))}); missing: {'; '.join(missing)}. "
            "Unset every LP_* connection variable to use the embedded simulator instead."
        )
    return ApiSettings(account_id=account_id, logins=logins, base_url=_base_url(env), **options_from_env(env))


def simulator_settings(
    env: Mapping[str, str], *, base_url: str, account_id: str, logins: list[tuple[str, str]]
) -> ApiSettings:
    """Settings for the embedded simulator; the non-connection options of ``env`` apply here too."""
    credentials = tuple(Credentials(username=u, password=p) for u, p in logins)
    return ApiSettings(
        account_id=account_id, logins=credentials, base_url=base_url, simulated=True, **options_from_env(env)
    )


def options_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings that are not about which server to talk to (state dir, PII, timeouts, retries)."""
    ca_bundle = env.get("LP_CA_BUNDLE", "").strip() or None
    if ca_bundle and not Path(ca_bundle).is_file():
        raise ConfigError(f"LP_CA_BUNDLE names no readable file: {ca_bundle}")
    return {
        "state_dir": Path(env.get("LP_STATE_DIR", "").strip() or "data/state"),
        "store_chat_text": _bool(env, "LP_STORE_CHAT_TEXT", False),
        "timeout_s": _number(env, "LP_TIMEOUT_S", 30.0, float),
        "max_response_bytes": _number(env, "LP_MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES, int),
        "ca_bundle": ca_bundle,
        "retry_base_s": _number(env, "LP_RETRY_BASE_S", 5.0, float, zero_ok=True),
        "chat_concurrency": _number(env, "LP_CHAT_CONCURRENCY", DEFAULT_CHAT_CONCURRENCY, int),
    }


def _base_url(env: Mapping[str, str]) -> str | None:
    base_url = env.get("LP_BASE_URL", "").strip().rstrip("/")
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"LP_BASE_URL must be an http(s) URL with a host, got {base_url!r}")
        return base_url
    domain = env.get("LP_DOMAIN", "").strip().rstrip("/")
    if "/" in domain:
        raise ConfigError(f"LP_DOMAIN is a host name without scheme or path, got {domain!r}")
    return f"https://{domain}" if domain else None


def _logins(env: Mapping[str, str], missing: list[str]) -> tuple[Credentials, ...]:
    """LP_AGENT_LOGINS, else the single login (username+password and/or bearer); appends what is missing."""
    username = env.get("LP_USERNAME", "").strip() or None
    password = env.get("LP_PASSWORD") or None
    bearer = env.get("LP_BEARER_TOKEN", "").strip() or None
    if bool(username) != bool(password):
        missing.append("LP_PASSWORD" if username else "LP_USERNAME")
        return ()
    agent_logins = env.get("LP_AGENT_LOGINS", "").strip()
    if agent_logins:
        return _agent_logins(agent_logins)
    if username or bearer:
        return (Credentials(username=username, password=password, bearer=bearer),)
    missing.append("credentials: LP_USERNAME and LP_PASSWORD, or LP_BEARER_TOKEN, or LP_AGENT_LOGINS")
    return ()


def _agent_logins(value: str) -> tuple[Credentials, ...]:
    """A JSON list of ``{"username", "password"}``, inline or in an owner-only file."""
    inline = value.startswith(("[", "{"))  # JSON, never echoed: it holds passwords
    text = value.encode() if inline else _read_owner_only(Path(value))
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"LP_AGENT_LOGINS is not valid JSON (line {exc.lineno})") from None
    if not isinstance(items, list) or not items:
        raise ConfigError('LP_AGENT_LOGINS must be a non-empty JSON list of {"username", "password"} objects')
    logins: list[Credentials] = []
    for index, item in enumerate(items):
        if not (isinstance(item, dict) and all(isinstance(item.get(k), str) and item[k] for k in _LOGIN_KEYS)):
            raise ConfigError(f'LP_AGENT_LOGINS entry {index} needs non-empty "username" and "password" strings')
        logins.append(Credentials(username=item["username"].strip(), password=item["password"]))
    names = [c.username for c in logins]
    if len(set(names)) != len(names):
        raise ConfigError("LP_AGENT_LOGINS names the same username twice")
    return tuple(logins)


def _read_owner_only(path: Path) -> bytes:
    """The logins file, refused when anyone but its owner may read or write it (it holds passwords)."""
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise ConfigError(f"LP_AGENT_LOGINS file is not a regular file: {path}")
            if mode & 0o077:
                raise ConfigError(
                    f"LP_AGENT_LOGINS file {path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); "
                    f"run: chmod 600 {path}"
                )
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"LP_AGENT_LOGINS file cannot be read: {path} ({exc.strerror})") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: Any, kind: type, *, zero_ok: bool = False) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{name} must be {'zero or more' if zero_ok else 'positive'}, got {raw!r}")
    return value
