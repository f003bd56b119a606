"""A client-side minimum interval per key: LivePerson asks not to poll ``chatSessions`` more often than every 2 s.

The caller waits instead of failing, measured in real time (it protects the server, whatever the pipeline's clock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class MinInterval:
    """Blocks ``wait(key)`` until ``interval_s`` has passed since the previous ``wait`` for the same key."""

    def __init__(
        self,
        interval_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._next: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: Hashable) -> float:
        """Wait for the key's turn; returns the seconds waited."""
        with self._lock:
            now = self._monotonic()
            start = max(now, self._next.get(key, now))
            self._next[key] = start + self.interval_s
        delay = start - now
        if delay > 0:
            self._sleep(delay)
        return delay
