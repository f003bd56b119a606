"""Run-failure alerts: a short JSON message posted to a webhook, with every configured secret removed.

Plain library (no Dagster), so that the message and the posting are tested on their own; the run-failure sensor
(``pipelines/sensors.py``) builds the alert from a failed run and calls ``post_alert``. Posting never raises: an
alert that cannot be delivered is logged, and the sensor goes on to the next failure (a dead webhook must not
stop failures from being recorded in Dagster).

What a message holds: job name, run id, the first line of the failure message (secrets replaced by
``[secret]``), and the time. The webhook URL itself is treated as a secret (Slack-style URLs carry a token): it
is never logged whole, only its scheme and host.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
MAX_MESSAGE_CHARS = 500
MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words
SECRET_VARIABLES = ("LP_PASSWORD", "LP_BEARER_TOKEN", "ALERT_WEBHOOK_URL")
URL_VARIABLES = ("WAREHOUSE_URL", "DAGSTER_PG_URL")  # SQLAlchemy URLs that may embed a password
REDACTED = "[secret]"


@dataclass(frozen=True, slots=True)
class FailureAlert:
    """One failed run, as the webhook receives it (``text`` is what chat webhooks such as Slack display)."""

    job: str
    run_id: str
    message: str
    at: str

    @property
    def text(self) -> str:
        return f"Dagster run of {self.job} failed ({self.run_id}) at {self.at}: {self.message}"

    def to_json(self) -> dict[str, str]:
        return {**asdict(self), "text": self.text}


def secret_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every secret the environment configures: passwords, bearers, the webhook URL, passwords inside URLs.

    Passwords of ``LP_AGENT_LOGINS`` are included when it is inline JSON (a file path holds them on disk only).
    Longest first, so that a secret containing another is replaced whole.
    """
    values = {environ[name] for name in SECRET_VARIABLES if environ.get(name)}
    values.update(_agent_login_passwords(environ.get("LP_AGENT_LOGINS", "")))
    for name in URL_VARIABLES:
        values.update(_url_password(environ.get(name, "")))
    return tuple(sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def first_line(text: str) -> str:
    """The first non-empty line, cut to ``MAX_MESSAGE_CHARS``: an alert names the failure, the UI has the rest."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def failure_alert(job: str, run_id: str, message: str, at: datetime, secrets: Iterable[str]) -> FailureAlert:
    """The alert for a failed run; ``message`` is redacted before it is cut, so no secret survives in part."""
    return FailureAlert(job=job, run_id=run_id, message=first_line(redact(message, secrets)), at=at.isoformat())


def safe_url(url: str) -> str:
    """Scheme and host of ``url``: how logs name the webhook without its path or query (which carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def post_alert(
    url: str,
    alert: FailureAlert,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> bool:
    """POST the alert as JSON (TLS verified, bounded by ``timeout_s``); True when the webhook answered 2xx.

    Never raises: a refused connection, a timeout or an error status is logged as a warning and returns False.
    """
    body = json.dumps(alert.to_json()).encode()
    headers = {"Content-Type": "application/json"}
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout_s, verify=True)
    except requests.RequestException as exc:
        log.warning("alert for run %s not delivered to %s: %s", alert.run_id, safe_url(url), type(exc).__name__)
        return False
    if not response.ok:
        log.warning("alert for run %s refused by %s: HTTP %s", alert.run_id, safe_url(url), response.status_code)
        return False
    log.info("alert for run %s delivered to %s", alert.run_id, safe_url(url))
    return True


def _agent_login_passwords(value: str) -> list[str]:
    if not value.strip().startswith(("[", "{")):
        return []
    try:
        items = json.loads(value)
    except ValueError:
        return []
    items = items if isinstance(items, list) else [items]
    return [item["password"] for item in items if isinstance(item, dict) and isinstance(item.get("password"), str)]


def _url_password(value: str) -> list[str]:
    if not value:
        return []
    try:
        password = sa.engine.make_url(value).password
    except (sa.exc.ArgumentError, ValueError):
        return []
    return [str(password)] if password else []
