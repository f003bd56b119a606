"""The open login breakers as an operator may see them in Dagster: how many, which login (masked), since when.

Read from the breaker files under ``LP_STATE_DIR`` (``session_cache.LoginBreaker``), which hold no password.
Usernames are masked here: this metadata is kept for every run in Dagster's event log and is meant as a count at a
glance. The login is named in full where an operator acts on it: the run's log, the run-health check's
``first_error`` (with the reset command), and ``python -m pipelines.liveperson.session_cache --list-breakers``.
"""

from __future__ import annotations

from typing import Any

from pipelines.liveperson.config import ApiSettings
from pipelines.liveperson.session_cache import LoginBreaker, login_fingerprint

RESET_COMMAND = "python -m pipelines.liveperson.session_cache --reset-breaker USERNAME"


def mask_username(username: str | None) -> str:
    """Enough of a login to recognise it, not enough to copy it: ``eli.dubois`` -> ``el******is``."""
    if not username:
        return "(bearer)"
    if len(username) <= 4:
        return username[0] + "*" * (len(username) - 1)
    return username[:2] + "*" * (len(username) - 4) + username[-2:]


def breaker_metadata(settings: ApiSettings) -> dict[str, Any]:
    """Asset metadata about the login breakers under ``settings.state_dir``.

    ``open_login_breakers`` counts the breakers that block a login configured now (masked in ``blocked_logins``,
    with the HTTP status that opened each and when); ``stale_login_breakers`` counts those left by a configuration
    no longer in use (another password or server), which block nothing but ``--list-breakers`` still shows.
    """
    configured = {
        login_fingerprint(settings.base_url or "", settings.account_id, credentials) for credentials in settings.logins
    }
    blocking: list[dict[str, Any]] = []
    stale = 0
    for path, record in LoginBreaker(settings.state_dir).records():
        if path.stem not in configured:
            stale += 1
            continue
        blocking.append(
            {
                "login": mask_username(record.get("username")),
                "http_status": record.get("status"),
                "since": record.get("at"),
            }
        )
    metadata: dict[str, Any] = {"open_login_breakers": len(blocking), "stale_login_breakers": stale}
    if blocking:
        metadata["blocked_logins"] = blocking
        metadata["reset_breaker_with"] = RESET_COMMAND
    return metadata
