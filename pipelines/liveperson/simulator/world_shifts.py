"""Every agent's chat-state timeline for one day, drawn with numpy in one go (fast for thousands of agents).

A shift is Offline until its start, then Online spells (minutes to hours) alternating with breaks (Away, the odd
Away lunch, Occupied wrap-up), with sub-minute Away flaps inside Online spells, then Offline from its end. Shifts
start around the agent's fixed block (follow-the-sun) and end by 23:59:59, so every day starts all Offline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_MS = 86_400_000
LAST_MS = DAY_MS - 1_000  # 23:59:59: the latest moment anything may still be going on
KEY_SPAN = 1 << 27  # > DAY_MS: agent index * KEY_SPAN + ms makes one sorted key space for all agents
OFFLINE, ONLINE, OCCUPIED, AWAY = 1, 2, 3, 4
MINUTE = 60_000
HOUR = 60 * MINUTE
EARLIEST_START_MS = 10 * MINUTE  # a shift starts at most this long before its block
LONGEST_SHIFT_MS = 11 * HOUR
PAIRS = 24  # Online + break pairs drawn per shift; a shift that outlasts them ends on a longer last spell


@dataclass(frozen=True, slots=True)
class Timelines:
    """All agents' state changes as one array sorted by ``key = agent * KEY_SPAN + ms``."""

    keys: np.ndarray  # int64
    states: np.ndarray  # int8
    shift_end: np.ndarray  # int64 ms per agent (its Offline from then on)


def draw_timelines(rng: np.random.Generator, block_ms: np.ndarray, shift_ms: int, flaps_per_shift: float,
                   flap_ms: tuple[int, int]) -> Timelines:
    n = len(block_ms)
    start = block_ms + rng.integers(-EARLIEST_START_MS, EARLIEST_START_MS, size=n)
    start = np.maximum(start, rng.integers(2_000, 5 * MINUTE, size=n))
    length = np.clip(rng.normal(shift_ms, 30 * MINUTE, size=n), 5 * HOUR, LONGEST_SHIFT_MS).astype(np.int64)
    end = np.minimum(start + length, LAST_MS)

    # column 0: an Away spell some agents start with; then Online, break, Online, break, ...
    durations = np.empty((n, 1 + 2 * PAIRS), dtype=np.int64)
    states = np.empty((n, 1 + 2 * PAIRS), dtype=np.int8)
    first_away = rng.random(n) < 0.25
    durations[:, 0] = np.where(first_away, rng.integers(MINUTE, 6 * MINUTE, size=n), 0)
    states[:, 0] = AWAY
    durations[:, 1::2] = np.clip(rng.exponential(50 * MINUTE, size=(n, PAIRS)), 4 * MINUTE, 3 * HOUR)
    states[:, 1::2] = ONLINE
    occupied = rng.random((n, PAIRS)) < 0.4
    lunch = rng.random((n, PAIRS)) < 0.15
    durations[:, 2::2] = np.where(occupied, rng.integers(5 * MINUTE, 25 * MINUTE, size=(n, PAIRS)),
                                  np.where(lunch, rng.integers(30 * MINUTE, 60 * MINUTE, size=(n, PAIRS)),
                                           rng.integers(2 * MINUTE, 15 * MINUTE, size=(n, PAIRS))))
    states[:, 2::2] = np.where(occupied, OCCUPIED, AWAY)
    starts = start[:, None] + np.cumsum(durations, axis=1) - durations
    valid = (durations > 0) & (starts < (end - MINUTE)[:, None])
    ends = np.minimum(np.where(valid, starts + durations, 0), end[:, None])
    last = valid.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)  # the shift's last spell runs to its end
    ends[np.arange(n), last] = end

    agent = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None], valid.shape)
    flap_agent, flap_at, flap_len = _flaps(rng, agent[valid], starts[valid], ends[valid], states[valid] == ONLINE,
                                           end - start, flaps_per_shift, flap_ms)
    everyone = np.arange(n, dtype=np.int64)
    keys = np.concatenate([everyone * KEY_SPAN, agent[valid] * KEY_SPAN + starts[valid], everyone * KEY_SPAN + end,
                           flap_agent * KEY_SPAN + flap_at, flap_agent * KEY_SPAN + flap_at + flap_len])
    codes = np.concatenate([np.full(n, OFFLINE, np.int8), states[valid], np.full(n, OFFLINE, np.int8),
                            np.full(len(flap_at), AWAY, np.int8), np.full(len(flap_at), ONLINE, np.int8)])
    order = np.argsort(keys, kind="stable")
    return Timelines(keys=keys[order], states=codes[order], shift_end=end)


def _flaps(rng: np.random.Generator, agent: np.ndarray, starts: np.ndarray, ends: np.ndarray, online: np.ndarray,
           shift_len: np.ndarray, flaps_per_shift: float, flap_ms: tuple[int, int]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-minute Away flaps: Poisson in each Online spell, about ``flaps_per_shift`` per shift's Online time."""
    agent, starts, ends = agent[online], starts[online], ends[online]
    online_ms = np.bincount(agent, weights=ends - starts, minlength=len(shift_len))
    rate = flaps_per_shift / np.maximum(online_ms[agent], 1)
    counts = rng.poisson(rate * (ends - starts))
    spell = np.repeat(np.arange(len(starts)), counts)
    length = rng.integers(flap_ms[0], flap_ms[1] + 1, size=len(spell))
    room = ends[spell] - starts[spell] - length - 4_000
    at = starts[spell] + 2_000 + (rng.random(len(spell)) * np.maximum(room, 0)).astype(np.int64)
    order = np.lexsort((at, spell))
    spell, at, length, room = spell[order], at[order], length[order], room[order]
    # a flap must fit in its spell and not touch the previous flap of the same spell
    clash = np.zeros(len(spell), dtype=bool)
    clash[1:] = (spell[1:] == spell[:-1]) & (at[1:] < at[:-1] + length[:-1] + 2_000)
    keep = (room > 0) & ~clash
    return agent[spell[keep]], at[keep], length[keep]
