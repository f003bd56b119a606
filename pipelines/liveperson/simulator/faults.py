"""Faults the simulator can inject, switchable per endpoint and by probability, from a seeded RNG.

A rule names a resource (``"availableAgents"``, ``"chat/{chatId}"``, ``"login"`` ... or ``"*"``), a kind and
a probability. For each request the server asks :meth:`Faults.decide`, which returns how long to sleep (latency
rules add up) and at most one fault that changes the answer. Kinds:

- ``latency``: ``ms`` fixed delay; ``spike_probability`` and ``spike_ms=(lo, hi)`` for occasional spikes. Real time.
- ``expire_session``: 401 and the agent session is killed; ``every_minutes=N`` instead expires every agent session
  when a boundary of N simulated minutes has passed since it was opened.
- ``rate_limit``: 429 with ``Retry-After: retry_after`` (seconds, default 1).
- ``server_error``: ``status`` 500 (default), 502 or 503.
- ``html``: an HTML error page with ``status`` 502 (default) or 200, as proxies send.
- ``truncate``: the real body cut off at a random point (Content-Length matches what is sent).
- ``xml``: the real resource rendered as XML although JSON was asked, status 200.
- ``outage``: every matching endpoint answers 503 between the simulated times ``start`` and ``end``.

Aliases ``"429"``, ``"500"``, ``"502"``, ``"503"`` and ``"expire"`` exist because callers guess them.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

KINDS = ("latency", "expire_session", "rate_limit", "server_error", "html", "truncate", "xml", "outage")
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "429": ("rate_limit", {}),
    "500": ("server_error", {"status": 500}),
    "502": ("server_error", {"status": 502}),
    "503": ("server_error", {"status": 503}),
    "expire": ("expire_session", {}),
}
ENDPOINTS = (
    "*",
    "domain",
    "login",
    "refresh",
    "logout",
    "agentSession",
    "info",
    "availability",
    "availableAgents",
    "chat/availableSlots",
    "chatSessions",
    "chat/{chatId}",
    "chat/{chatId}/events",
    "chat/{chatId}/info",
)


@dataclass(frozen=True, slots=True)
class FaultRule:
    endpoint: str
    kind: str
    probability: float
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.params.items()}
        return {"endpoint": self.endpoint, "kind": self.kind, "probability": self.probability, **params}


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request: sleep ``latency_s`` real seconds, then apply ``fault`` (None: answer normally)."""

    latency_s: float = 0.0
    fault: FaultRule | None = None


NO_FAULT = Decision()


def _as_time(value: Any) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _validated(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check parameters up front, so a typo fails at ``set`` time rather than as an odd response later."""
    if kind == "latency":
        lo, hi = params.setdefault("spike_ms", (200, 2000))
        params["spike_ms"] = (float(lo), float(hi))
        params["ms"] = float(params.get("ms", 0))
        params["spike_probability"] = float(params.get("spike_probability", 0.0))
    elif kind == "server_error":
        if int(params.setdefault("status", 500)) not in (500, 502, 503):
            raise ValueError("server_error status must be 500, 502 or 503")
    elif kind == "html":
        if int(params.setdefault("status", 502)) not in (200, 502):
            raise ValueError("html status must be 200 or 502")
    elif kind == "rate_limit":
        params["retry_after"] = int(params.get("retry_after", 1))
    elif kind == "outage":
        params["start"], params["end"] = _as_time(params["start"]), _as_time(params["end"])
    elif kind == "expire_session" and "every_minutes" in params:
        params["every_minutes"] = float(params["every_minutes"])
    return params


class Faults:
    """The switchable fault rules of one simulator; thread-safe, deterministic for a seed and request order."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def set(
        self, endpoint: str = "*", kind: str = "server_error", probability: float = 1.0, **params: Any
    ) -> FaultRule:
        """Add a rule, replacing any rule of the same endpoint and kind."""
        if kind in ALIASES:
            kind, implied = ALIASES[kind]
            params = {**implied, **params}
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within 0..1")
        rule = FaultRule(endpoint, kind, float(probability), _validated(kind, dict(params)))
        with self._lock:
            self._rules = [r for r in self._rules if (r.endpoint, r.kind) != (endpoint, kind)] + [rule]
        return rule

    def clear(self, endpoint: str | None = None) -> None:
        """Remove every rule, or those of one endpoint."""
        with self._lock:
            self._rules = [] if endpoint is None else [r for r in self._rules if r.endpoint != endpoint]

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def decide(self, endpoint: str, now: datetime, session_opened: datetime | None = None) -> Decision:
        """Roll the dice for one request to ``endpoint`` at simulated time ``now``."""
        rules = self._rules  # replaced, never mutated: a consistent view without the lock
        if not rules:
            return NO_FAULT
        latency = 0.0
        chosen: FaultRule | None = None
        with self._lock:
            for rule in rules:
                if rule.endpoint not in ("*", endpoint):
                    continue
                if rule.kind == "outage":
                    if chosen is None and rule.params["start"] <= now < rule.params["end"]:
                        chosen = rule
                    continue
                if rule.kind == "expire_session" and "every_minutes" in rule.params:
                    if chosen is None and session_opened is not None:
                        period = rule.params["every_minutes"] * 60.0
                        if int(session_opened.timestamp() // period) != int(now.timestamp() // period):
                            chosen = rule
                    continue
                if self._rng.random() >= rule.probability:
                    continue
                if rule.kind == "latency":
                    latency += self._latency_s(rule.params)
                elif chosen is None:
                    chosen = rule
        return Decision(latency, chosen)

    def cut_point(self, length: int) -> int:
        """Where to truncate a body of ``length`` bytes: somewhere strictly inside it."""
        with self._lock:
            return self._rng.randint(1, max(1, length - 1))

    def _latency_s(self, params: Mapping[str, Any]) -> float:
        ms = params["ms"]
        if params["spike_probability"] and self._rng.random() < params["spike_probability"]:
            lo, hi = params["spike_ms"]
            ms += self._rng.uniform(lo, hi)
        return ms / 1000.0
