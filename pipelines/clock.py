"""The pipeline's clock, injectable so that runs against the simulator's accelerated clock use simulated time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Wall-clock time in UTC: the default outside tests and the embedded simulator."""
    return datetime.now(UTC)
