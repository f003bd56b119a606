"""The simulator's clock: real time by default, or set, accelerated, paused and advanced by tests and operators.

The clock is a pure function of four parameters (a wall-clock anchor, the simulated time at that anchor, a speed
and a paused flag), so ``state()`` handed to another process lets it compute the same simulated time.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any


class SimClock:
    """Thread-safe simulated UTC time; callable, so it can be injected wherever a ``pipelines.clock.Clock`` is."""

    def __init__(self, at: datetime | None = None, speed: float = 1.0, paused: bool = False) -> None:
        self._lock = threading.Lock()
        self._anchor_wall = time.time()
        self._anchor_sim = self._anchor_wall if at is None else _epoch(at)
        self._speed = _check_speed(speed)
        self._paused = bool(paused)

    def _sim_epoch(self, wall: float) -> float:
        if self._paused:
            return self._anchor_sim
        return self._anchor_sim + (wall - self._anchor_wall) * self._speed

    def now(self) -> datetime:
        with self._lock:
            return datetime.fromtimestamp(self._sim_epoch(time.time()), UTC)

    __call__ = now

    def set(self, at: datetime | None = None, speed: float | None = None, paused: bool | None = None) -> None:
        """Change any of time, speed and pause; the others keep running from the current simulated time."""
        with self._lock:
            wall = time.time()
            current = self._sim_epoch(wall)
            self._anchor_wall = wall
            self._anchor_sim = current if at is None else _epoch(at)
            if speed is not None:
                self._speed = _check_speed(speed)
            if paused is not None:
                self._paused = bool(paused)

    def advance(self, seconds: float) -> None:
        """Jump forward (or back, with a negative value) by simulated seconds; works while paused too."""
        with self._lock:
            wall = time.time()
            self._anchor_sim = self._sim_epoch(wall) + float(seconds)
            self._anchor_wall = wall

    def state(self) -> dict[str, Any]:
        """JSON-ready parameters from which ``from_state`` rebuilds an identical clock in any process."""
        with self._lock:
            return {
                "anchor_wall": self._anchor_wall,
                "anchor_sim": self._anchor_sim,
                "speed": self._speed,
                "paused": self._paused,
            }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SimClock:
        clock = cls()
        clock._anchor_wall = float(state["anchor_wall"])
        clock._anchor_sim = float(state["anchor_sim"])
        clock._speed = _check_speed(float(state["speed"]))
        clock._paused = bool(state["paused"])
        return clock


def _epoch(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError("the simulated time must be timezone-aware")
    return at.timestamp()


def _check_speed(speed: float) -> float:
    if not speed > 0:
        raise ValueError(f"speed must be positive, got {speed!r}")
    return float(speed)
