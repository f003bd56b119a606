"""Sessions that outlast a run, and the login breaker: both kept as owner-only files under ``LP_STATE_DIR``.

Session cache. A run every minute must not log in 1,440 times a day, nor leave an agent session behind each time:
the bearer, csrf, cookies (``Session_id`` and the agent session's own), the agent session id, the login time and
``sessionTTl`` of each login are kept in ``<state>/sessions/<key>.json`` (file 0600, folder 0700, written to a
temporary file and renamed into place) and reused by the next process until a 401 or the TTL ends it. This is the
one place secrets are written (like any CLI's credential cache); a bearer given by the environment is never
written: the entry then holds only the agent session and its cookies, and the bearer comes from the environment.
Opening and renewing a session hold a per-login lock file (``flock``), so that processes that start together, or
meet the same expiry, share one login instead of each opening (and leaking) their own.

Login breaker. LivePerson blocks a user (451) after repeated failed logins, and a wrong password retried every
minute is how that happens. After a 401 or 451 on login, ``<state>/breakers/<fingerprint>.json`` records it, keyed
by a hash of the login's configuration (account, server, username and a hash of the password); every later login
with that configuration is refused with ``LoginBlocked`` before any request is sent. It closes by itself when the
configuration changes (e.g. a corrected password). An operator resets it after fixing the cause with::

    python -m pipelines.liveperson.session_cache --reset-breaker USERNAME [--state-dir DIR]

or by deleting the breaker file (``--list-breakers`` shows them). ``--state-dir`` defaults to ``LP_STATE_DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipelines.liveperson.config import Credentials
from pipelines.liveperson.errors import LoginBlocked

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(account_id: str, credentials: Credentials) -> str:
    """One cache file per account and login; a bearer-only login is keyed by a hash of its bearer."""
    who = credentials.username or f"bearer:{_sha256(credentials.bearer or '')}"
    return _sha256(f"{account_id}\0{who}")[:32]


def login_fingerprint(base_url: str, account_id: str, credentials: Credentials) -> str:
    """The login's configuration as a hash: changes when the password (or server, account, user) changes."""
    password_hash = _sha256(credentials.password or "")
    return _sha256(f"{base_url}\0{account_id}\0{credentials.username}\0{password_hash}")[:32]


@dataclass(slots=True)
class CachedSession:
    """What a later process needs to go on using an open login and agent session."""

    base_url: str
    account_id: str
    username: str | None
    fingerprint: str
    login_at: float
    session_ttl_ms: int | None
    refreshed_at: float
    bearer: str | None = field(default=None, repr=False)
    csrf: str | None = field(default=None, repr=False)
    agent_session_id: str | None = None
    agent_id: str | None = None
    cookies: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def expired(self, now: datetime) -> bool:
        """Past ``sessionTTl`` since login (unknown TTL: only a 401 ends it)."""
        if self.session_ttl_ms is None:
            return False
        return now.timestamp() - self.login_at >= self.session_ttl_ms / 1000


def _ensure_private_dir(path: Path) -> None:
    """Create ``path`` owner-only; an existing folder is left as it is (it may be shared, e.g. a mount point)."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def write_private(path: Path, payload: bytes) -> None:
    """Write ``payload`` atomically to an owner-only file: a temporary 0600 file renamed into place."""
    _ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("ignoring unreadable state file %s: %s", path, type(exc).__name__)
        return None
    return data if isinstance(data, dict) else None


class SessionCache:
    """``<state>/sessions``: one owner-only JSON file per login."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = Path(state_dir) / "sessions"

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, key: str) -> CachedSession | None:
        data = _read_json(self.path(key))
        if data is None:
            return None
        try:
            return CachedSession(**data)
        except TypeError:
            log.warning("ignoring a session cache entry of an older layout: %s", self.path(key))
            return None

    def save(self, key: str, entry: CachedSession) -> None:
        write_private(self.path(key), orjson.dumps(asdict(entry)))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold the login's lock across processes, so that two runs starting together log in once, not twice."""
        _ensure_private_dir(self.folder)
        fd = os.open(self.folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


class LoginBreaker:
    """``<state>/breakers``: logins refused with 401 or 451, not to be tried again until reset."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = Path(state_dir) / "breakers"

    def _path(self, fingerprint: str) -> Path:
        return self.folder / f"{fingerprint}.json"

    def check(self, fingerprint: str, username: str | None) -> None:
        """Raise ``LoginBlocked`` when the breaker is open for this login configuration."""
        record = _read_json(self._path(fingerprint))
        if record is None:
            return
        message = (
            f"login breaker open for {username!r} since {record.get('at')}: {record.get('reason')}. No login is "
            f"attempted until the configuration changes or an operator runs: "
            f"python -m pipelines.liveperson.session_cache --reset-breaker {shlex.quote(username or '')} "
            f"--state-dir {shlex.quote(str(self.folder.parent))}"
        )
        log.error(message)
        raise LoginBlocked(message)

    def trip(self, fingerprint: str, username: str | None, *, status: int, reason: str, at: datetime) -> None:
        record = {"username": username, "status": status, "reason": reason, "at": at.isoformat()}
        write_private(self._path(fingerprint), orjson.dumps(record))
        log.error(
            "LOGIN BREAKER OPENED for %r after HTTP %s on login (%s): further logins are refused until the "
            "configuration changes or an operator resets it (python -m pipelines.liveperson.session_cache "
            "--reset-breaker %s)",
            username,
            status,
            reason,
            shlex.quote(username or ""),
        )

    def records(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.json")):
            record = _read_json(path)
            if record is not None:
                yield path, record

    def reset(self, username: str) -> int:
        """Close every breaker recorded for ``username``; returns how many were open."""
        closed = 0
        for path, record in self.records():
            if record.get("username") == username:
                path.unlink(missing_ok=True)
                closed += 1
        return closed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.liveperson.session_cache",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--state-dir", default=os.environ.get("LP_STATE_DIR") or "data/state")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--reset-breaker", metavar="USERNAME", help="close the login breaker of USERNAME")
    action.add_argument("--list-breakers", action="store_true", help="list open login breakers")
    args = parser.parse_args(argv)
    breaker = LoginBreaker(Path(args.state_dir))
    if args.list_breakers:
        for path, record in breaker.records():
            print(f"{record.get('username')}\tHTTP {record.get('status')}\t{record.get('at')}\t{path}")
        return 0
    closed = breaker.reset(args.reset_breaker)
    print(f"closed {closed} login breaker(s) for {args.reset_breaker!r} in {args.state_dir}")
    return 0 if closed else 1


if __name__ == "__main__":
    sys.exit(main())
