"""One simulated UTC day, replayed from (seed, day): every agent's state timeline and every chat's routing.

Times are integer milliseconds since the day's midnight. No shift and no chat spans midnight: everyone is Offline
at 00:00:00, shifts end by 23:59:59 and a chat ends before its agent's shift does. That keeps a day a pure
function of the seed, so any process can replay any day on its own.

Routing walks chat offers in time order, so capacity and state checks only ever look at the present. An
offer the agent does not accept turns it Away for a few seconds 20 s later, as LivePerson does, and the chat is
offered to someone else.
"""

from __future__ import annotations

import bisect
import heapq
import random
from dataclasses import dataclass

import numpy as np

from pipelines.liveperson.simulator.world_profiles import AgentProfile
from pipelines.liveperson.simulator.world_shifts import (
    AWAY,
    DAY_MS,
    EARLIEST_START_MS,
    KEY_SPAN,
    LAST_MS,
    LONGEST_SHIFT_MS,
    MINUTE,
    OCCUPIED,
    OFFLINE,
    ONLINE,
    draw_timelines,
)

__all__ = ["AWAY", "DAY_MS", "LINE_GAP_MS", "MINUTE", "OCCUPIED", "OFFLINE", "ONLINE", "DayParams", "DayPlan",
           "build_day"]

RING_TIMEOUT_MS = 20_000  # an offer not accepted within 20 s turns the agent Away
ROUTING_RETRY_MS = 30_000
ROUTING_ATTEMPTS = 8  # offers 30 s apart: a visitor waits up to about 4 minutes
PROBES = 64  # agents looked at per offer at most
SHIFT_EARLY_MS, SHIFT_REACH_MS = EARLIEST_START_MS, LONGEST_SHIFT_MS + EARLIEST_START_MS
PROBE_STRIDE = 40_503  # a prime: successive probes land far apart in the slice
CANDIDATES = 3  # eligible agents compared per offer (the least loaded wins)
LINE_GAP_MS = (12_000, 48_000)  # time between chat lines
WRAP_MS = (20_000, 90_000)  # a chat's time beyond its lines (greeting, goodbye, closing)


@dataclass(frozen=True, slots=True)
class DayParams:
    """The slice of ``WorldConfig`` a day's replay depends on."""

    seed: int
    arrivals_per_min_peak: float
    flat_arrivals: bool
    mean_lines: float
    flaps_per_shift: float
    flap_ms: tuple[int, int]
    shift_ms: int
    unlimited_cap: int
    ring_no_answer: float


class DayPlan:
    """The replayed day: all agents' state changes (sorted by agent, then time) and all chats (by arrival).

    Chats are parallel lists indexed by the chat's number within the day; ``agent`` is -1 (and ``assigned`` -1)
    for a chat nobody took before the visitor gave up.
    """

    def __init__(self, day: int, keys: np.ndarray, states: np.ndarray, shift_end: list[int]) -> None:
        self.day = day
        n = len(shift_end)
        self.shift_end = shift_end
        self.seg_keys = keys
        self.seg_state_arr = states
        self.seg_start_arr = keys % KEY_SPAN
        self.agent_base = np.arange(n, dtype=np.int64) * KEY_SPAN
        self.offsets = np.searchsorted(keys, np.arange(n + 1, dtype=np.int64) * KEY_SPAN).tolist()
        self.arrival: list[int] = []
        self.assigned: list[int] = []
        self.end: list[int] = []
        self.agent: list[int] = []
        self.lines: list[int] = []
        self.skill: list[int] = []
        self.chats_by_agent: list[list[int]] = [[] for _ in range(n)]  # in assignment order
        self.assign_keys = self.end_keys = np.zeros(0, dtype=np.int64)

    def segments(self, i: int) -> tuple[list[int], list[int]]:
        """Agent ``i``'s state changes: start times (ms) and state codes; the first is Offline at 0."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.seg_start_arr[lo:hi].tolist(), self.seg_state_arr[lo:hi].tolist()

    def states_at(self, ms: int) -> tuple[np.ndarray, np.ndarray]:
        """Chat state code and state start (ms) of every agent at ``ms``."""
        idx = np.searchsorted(self.seg_keys, self.agent_base + ms, side="right") - 1
        return self.seg_state_arr[idx], self.seg_start_arr[idx]

    def chat_counts_at(self, ms: int) -> np.ndarray:
        """Chats each agent is in at ``ms`` (assigned at or before, not yet ended)."""
        keys = self.agent_base + ms
        started = np.searchsorted(self.assign_keys, keys, side="right") - np.searchsorted(self.assign_keys, keys - ms)
        ended = np.searchsorted(self.end_keys, keys, side="right") - np.searchsorted(self.end_keys, keys - ms)
        return started - ended


def build_day(params: DayParams, profiles: list[AgentProfile], skill_ids: list[str], day: int) -> DayPlan:
    rng = np.random.default_rng([params.seed, day, 0])
    block_ms = np.array([int(p.shift_start_h * 3_600_000) for p in profiles], dtype=np.int64)
    lines = draw_timelines(rng, block_ms, params.shift_ms, params.flaps_per_shift, params.flap_ms)
    router = _Router(params, profiles, skill_ids, lines.keys, lines.states, lines.shift_end.tolist())
    router.route(np.random.default_rng([params.seed, day, 1]), random.Random(f"ring:{params.seed}:{day}"))
    keys, states = router.timeline_with_ring_flaps(lines.keys, lines.states)
    plan = DayPlan(day, keys, states, lines.shift_end.tolist())
    router.fill(plan)
    return plan


def _arrivals(rng: np.random.Generator, params: DayParams) -> np.ndarray:
    """Chat arrival times (ms, sorted): Poisson per minute, busiest at EMEA/Americas business hours."""
    minutes = np.arange(1440)
    if params.flat_arrivals:
        rate = np.full(1440, params.arrivals_per_min_peak)
    else:
        rate = params.arrivals_per_min_peak * (0.2 + 0.8 * np.exp(-(((minutes / 60.0 - 13.0) / 5.0) ** 2)))
    counts = rng.poisson(rate)
    times = np.repeat(minutes * MINUTE, counts) + rng.integers(0, MINUTE, size=int(counts.sum()))
    times.sort()
    return times[times < LAST_MS - 5 * MINUTE]


class _Router:
    """Offers each chat to agents in time order, tracking load and the Away flaps that unaccepted offers cause."""

    def __init__(self, params: DayParams, profiles: list[AgentProfile], skill_ids: list[str], keys: np.ndarray,
                 states: np.ndarray, shift_end: list[int]) -> None:
        self.params = params
        self.shift_end = shift_end
        bounds = np.searchsorted(keys, np.arange(len(profiles) + 1, dtype=np.int64) * KEY_SPAN).tolist()
        starts, codes = (keys % KEY_SPAN).tolist(), states.tolist()
        # per agent, small lists: bisecting 30 entries beats bisecting one list of all agents
        self.starts = [starts[bounds[i]:bounds[i + 1]] for i in range(len(profiles))]
        self.states = [codes[bounds[i]:bounds[i + 1]] for i in range(len(profiles))]
        self.caps = [params.unlimited_cap if p.max_chats < 0 else p.max_chats for p in profiles]
        self.pools = _skill_pools(profiles, skill_ids, params.seed)
        self.pool_blocks = [[int(profiles[i].shift_start_h * 3_600_000) for i in pool] for pool in self.pools]
        self.active: list[list[int]] = [[] for _ in profiles]  # end times of each agent's current chats
        self.ring_flaps: list[list[tuple[int, int]]] = [[] for _ in profiles]
        self.n_agents = len(profiles)

    def route(self, rng: np.random.Generator, ring_rng: random.Random) -> None:
        p = self.params
        arrivals = _arrivals(rng, p)
        n = len(arrivals)
        lines = 1 + rng.poisson(max(p.mean_lines - 1, 0), size=n)
        durations = (lines * rng.integers(*LINE_GAP_MS, size=n) + rng.integers(*WRAP_MS, size=n)).tolist()
        waits = rng.integers(2_000, 60_000, size=n)
        popularity = 1 / np.arange(1, len(self.pools) + 1)  # the first skills (Sales, Billing) get most chats
        self.skill = rng.choice(len(self.pools), size=n, p=popularity / popularity.sum()).tolist()
        probes = rng.integers(0, 1 << 30, size=n).tolist()
        self.arrival, self.lines = arrivals.tolist(), lines.tolist()
        self.assigned, self.end, self.agent = [-1] * n, [0] * n, [-1] * n
        first = arrivals + waits
        order = np.lexsort((np.arange(n), first))  # first offers in time order; retries wait in a small heap
        first_at, first_c = first[order].tolist(), order.tolist()
        retries: list[tuple[int, int, int]] = []
        k = 0
        while k < n or retries:
            if retries and (k == n or retries[0][0] < first_at[k]):
                at, c, attempt = heapq.heappop(retries)
            else:
                at, c, attempt = first_at[k], first_c[k], 0
                k += 1
            agent = self._pick(self.skill[c], at, probes[c] + attempt * 7919)
            if agent >= 0 and ring_rng.random() < p.ring_no_answer:
                flap_at = at + RING_TIMEOUT_MS
                length = ring_rng.randint(*p.flap_ms)
                if self._online_through(agent, at, flap_at + length + 2_000):
                    self.ring_flaps[agent].append((flap_at, flap_at + length))
                    heapq.heappush(retries, (flap_at, c, attempt + 1))
                    continue
            if agent >= 0:
                end = min(at + durations[c], self.shift_end[agent] - 30_000)
                self.assigned[c], self.end[c], self.agent[c] = at, end, agent
                self.active[agent].append(end)
            elif attempt + 1 < ROUTING_ATTEMPTS:
                heapq.heappush(retries, (at + ROUTING_RETRY_MS, c, attempt + 1))
            else:
                self.end[c] = min(at + 5_000, LAST_MS)  # the visitor gave up waiting

    def _pick(self, skill: int, at: int, probe: int) -> int:
        """The least loaded of the first few Online agents with a free slot and time left in their shift.

        Only agents whose shift block can cover ``at`` are probed, from a seeded offset and at most ``PROBES`` of
        them, so the work per offer stays small whatever the account size.
        """
        pool, blocks = self.pools[skill], self.pool_blocks[skill]
        shift_end, starts, states, active, caps = self.shift_end, self.starts, self.states, self.active, self.caps
        right = bisect.bisect_right
        lo = bisect.bisect_left(blocks, at - SHIFT_REACH_MS)
        n = right(blocks, at + SHIFT_EARLY_MS) - lo
        best, best_load, seen = -1, 1.0, 0
        step = 1 if n <= PROBES else PROBE_STRIDE  # spread probes over all the blocks on shift
        for j in range(min(n, PROBES)):
            i = pool[lo + (probe + j * step) % n]
            if shift_end[i] - at < 3 * MINUTE or states[i][right(starts[i], at) - 1] != ONLINE:
                continue
            if self.ring_flaps[i] and self._ringing_away(i, at):
                continue
            ends = active[i]
            if ends:
                ends[:] = [e for e in ends if e > at]
            load = len(ends) / caps[i]
            if load < best_load:
                best, best_load = i, load
            seen += load < 1
            if best_load == 0 or seen == CANDIDATES:
                break
        return best

    def _ringing_away(self, i: int, at: int) -> bool:
        """Whether ``at`` falls in one of the agent's unaccepted-offer flaps (only the latest two can hold it)."""
        flaps = self.ring_flaps[i]
        return flaps[-1][1] > at and any(a <= at < b for a, b in flaps[-2:])

    def _online_through(self, i: int, start: int, end: int) -> bool:
        starts = self.starts[i]
        k = bisect.bisect_right(starts, start) - 1
        return (self.states[i][k] == ONLINE and starts[k + 1] > end
                and not any(a <= end and start < b for a, b in self.ring_flaps[i][-2:]))

    def timeline_with_ring_flaps(self, keys: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flaps = [(i * KEY_SPAN + a, i * KEY_SPAN + b) for i, spans in enumerate(self.ring_flaps) for a, b in spans]
        if not flaps:
            return keys, states
        starts, ends = np.array(flaps, dtype=np.int64).T
        all_keys = np.concatenate([keys, starts, ends])
        all_states = np.concatenate([states, np.full(len(starts), AWAY, np.int8), np.full(len(ends), ONLINE, np.int8)])
        order = np.argsort(all_keys, kind="stable")
        return all_keys[order], all_states[order]

    def fill(self, plan: DayPlan) -> None:
        plan.arrival, plan.assigned, plan.end, plan.agent = self.arrival, self.assigned, self.end, self.agent
        plan.lines, plan.skill = self.lines, self.skill
        order = sorted((a, c) for c, a in enumerate(self.assigned) if a >= 0)
        for _, c in order:
            plan.chats_by_agent[self.agent[c]].append(c)
        agent = np.asarray(self.agent, dtype=np.int64)
        taken = agent >= 0
        plan.assign_keys = np.sort(agent[taken] * KEY_SPAN + np.asarray(self.assigned, dtype=np.int64)[taken])
        plan.end_keys = np.sort(agent[taken] * KEY_SPAN + np.asarray(self.end, dtype=np.int64)[taken])


def _skill_pools(profiles: list[AgentProfile], skill_ids: list[str], seed: int) -> list[list[int]]:
    """Per skill, the agents that can take its chats (that skill, or no skill at all), by shift block and then
    in a seeded order, so the agents whose shifts can cover a moment form one contiguous slice."""
    rng = random.Random(f"pools:{seed}")
    pools = []
    for skill_id in skill_ids or [None]:
        pool = [i for i, p in enumerate(profiles)
                if p.max_chats != 0 and (not p.skills or any(sid == skill_id for sid, _ in p.skills))]
        rng.shuffle(pool)
        pool.sort(key=lambda i: profiles[i].shift_start_h)
        pools.append(pool)
    return pools
