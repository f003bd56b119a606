"""Run-level outage back-off: past 3 failed runs in a row, skip polls for 2, 4, 8, ... minutes (at most 60).

LivePerson's retry policy asks clients to slow down during an outage instead of retrying every minute. Transport
retries cover one run; this covers the schedule: the state lives in ``<state>/outage.json`` so that it spans
processes, and every skip is recorded (a counter and the last reason) so that operators see why runs were quiet.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from pipelines.clock import Clock, system_clock
from pipelines.liveperson.session_cache import write_private

log = logging.getLogger(__name__)

FAILURES_BEFORE_BACKOFF = 3
FIRST_PAUSE_MIN = 2
MAX_PAUSE_MIN = 60


@dataclass(slots=True)
class OutageState:
    consecutive_failures: int = 0
    skip_until: str | None = None  # ISO-8601 UTC
    skips: int = 0
    last_reason: str | None = None


def pause_after(consecutive_failures: int) -> timedelta:
    """The pause after the n-th failed run in a row: none before the 3rd, then 2, 4, 8, ... minutes, capped at 60."""
    if consecutive_failures < FAILURES_BEFORE_BACKOFF:
        return timedelta(0)
    doublings = min(consecutive_failures - FAILURES_BEFORE_BACKOFF, 6)
    return timedelta(minutes=min(FIRST_PAUSE_MIN * 2**doublings, MAX_PAUSE_MIN))


class OutageBackoff:
    """Decides whether a scheduled run should poll, from the outcomes of the runs before it."""

    def __init__(self, state_dir: Path, clock: Clock = system_clock) -> None:
        self.path = Path(state_dir) / "outage.json"
        self._clock = clock

    def state(self) -> OutageState:
        try:
            data = orjson.loads(self.path.read_bytes())
            return OutageState(**data)
        except FileNotFoundError:
            return OutageState()
        except (OSError, orjson.JSONDecodeError, TypeError) as exc:
            log.warning("outage state %s unreadable (%s): starting afresh", self.path, type(exc).__name__)
            return OutageState()

    def should_skip(self) -> tuple[bool, str]:
        """``(True, why)`` while an outage pause lasts, else ``(False, "")``."""
        state = self.state()
        if state.skip_until is None:
            return False, ""
        until = datetime.fromisoformat(state.skip_until)
        if self._clock() >= until:
            return False, ""
        reason = (
            f"API outage back-off: {state.consecutive_failures} failed runs in a row; "
            f"polling resumes at {until.isoformat()}"
        )
        return True, reason

    def record_success(self) -> None:
        state = self.state()
        if state.consecutive_failures:
            log.info("API reachable again after %d failed runs", state.consecutive_failures)
        state.consecutive_failures = 0
        state.skip_until = None
        self._write(state)

    def record_failure(self) -> None:
        state = self.state()
        state.consecutive_failures += 1
        pause = pause_after(state.consecutive_failures)
        if pause:
            state.skip_until = (self._clock() + pause).isoformat()
            log.warning(
                "%d failed runs in a row: pausing polls for %d minutes",
                state.consecutive_failures,
                pause // timedelta(minutes=1),
            )
        self._write(state)

    def record_skip(self, reason: str | None = None) -> None:
        """Count a skipped run; ``reason`` defaults to what ``should_skip`` says now."""
        state = self.state()
        state.skips += 1
        state.last_reason = reason or self.should_skip()[1] or "skipped"
        self._write(state)

    def _write(self, state: OutageState) -> None:
        write_private(self.path, orjson.dumps(asdict(state)))
