"""One simulated UTC day, replayed from (seed, day): every agent's state timeline and every chat's routing.

Times are integer milliseconds since the day's midnight. No shift and no chat spans midnight: everyone is Offline
at 00:00:00, shifts end by 23:59:59 and a chat ends before its agent's shift does. That keeps a day a pure
function of the seed, so any process can replay any day on its own.

The replay walks chat routing attempts in time order (a heap), so capacity and state checks only ever look at
the present; an unaccepted offer turns the agent Away for a few seconds 20 s later, as LivePerson does.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from dataclasses import dataclass

import numpy as np

from pipelines.liveperson.simulator.world_profiles import AgentProfile

DAY_MS = 86_400_000
LAST_MS = DAY_MS - 1_000  # 23:59:59: the latest moment anything may still be going on
KEY_SPAN = 1 << 27  # > DAY_MS: agent index * KEY_SPAN + ms makes one sorted key space for all agents
OFFLINE, ONLINE, OCCUPIED, AWAY = 1, 2, 3, 4
MINUTE = 60_000
RING_TIMEOUT_MS = 20_000  # an offer not accepted within 20 s turns the agent Away
ROUTING_RETRY_MS = 30_000
ROUTING_ATTEMPTS = 4
PROBES = 64  # agents looked at per routing attempt: bounded work whatever the account size
LINE_GAP_MS = (12_000, 48_000)  # time between chat lines


@dataclass(frozen=True, slots=True)
class DayParams:
    """The slice of ``WorldConfig`` a day's replay depends on (hashable, so days can be cached by it)."""

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
    """The replayed day: per-agent timelines (lists, and flat sorted arrays for vectorized lookups) and chats."""

    def __init__(self, day: int, n_agents: int) -> None:
        self.day = day
        self.seg_starts: list[list[int]] = [[0] for _ in range(n_agents)]
        self.seg_states: list[list[int]] = [[OFFLINE] for _ in range(n_agents)]
        self.shift_end = [0] * n_agents
        # chats, by index in arrival order
        self.arrival: list[int] = []
        self.assigned: list[int] = []  # -1: abandoned before any agent took it
        self.end: list[int] = []
        self.agent: list[int] = []  # agent index, -1 when abandoned
        self.lines: list[int] = []
        self.skill: list[int] = []
        self.chats_by_agent: list[list[int]] = [[] for _ in range(n_agents)]  # by assignment time

    def freeze(self) -> None:
        """Build the flat sorted arrays that make per-request lookups a handful of ``searchsorted`` calls."""
        n = len(self.seg_starts)
        counts = np.fromiter((len(s) for s in self.seg_starts), dtype=np.int64, count=n)
        owner = np.repeat(np.arange(n, dtype=np.int64), counts)
        self.seg_start_arr = np.fromiter((t for s in self.seg_starts for t in s), dtype=np.int64, count=len(owner))
        self.seg_state_arr = np.fromiter((c for s in self.seg_states for c in s), dtype=np.int8, count=len(owner))
        self.seg_keys = owner * KEY_SPAN + self.seg_start_arr
        self.agent_base = np.arange(n, dtype=np.int64) * KEY_SPAN
        agent = np.asarray(self.agent, dtype=np.int64)
        taken = agent >= 0
        self.assign_keys = np.sort(agent[taken] * KEY_SPAN + np.asarray(self.assigned, dtype=np.int64)[taken])
        self.end_keys = np.sort(agent[taken] * KEY_SPAN + np.asarray(self.end, dtype=np.int64)[taken])

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
    plan = DayPlan(day, len(profiles))
    rng = random.Random(f"day:{params.seed}:{day}")
    for i, profile in enumerate(profiles):
        _agent_day(plan, i, profile, params, rng)
    _route_chats(plan, profiles, skill_ids, params, day)
    plan.freeze()
    return plan


def _agent_day(plan: DayPlan, i: int, profile: AgentProfile, params: DayParams, rng: random.Random) -> None:
    """Offline, then a shift of Online spells broken by Away and Occupied spells and short flaps, then Offline."""
    start = int(profile.shift_start_h * 3_600_000) + rng.randint(-10 * MINUTE, 10 * MINUTE)
    start = max(start, rng.randint(2_000, 5 * MINUTE))
    length = int(min(max(rng.gauss(params.shift_ms, 30 * MINUTE), 5 * 3_600_000), 11 * 3_600_000))
    end = min(start + length, LAST_MS)
    starts, states = plan.seg_starts[i], plan.seg_states[i]
    t = start
    state = AWAY if rng.random() < 0.25 else ONLINE  # some log in and take a minute before going Online
    while t < end - MINUTE:
        starts.append(t)
        states.append(state)
        t += _dwell(state, rng)
        state = ONLINE if state != ONLINE else (AWAY if rng.random() < 0.6 else OCCUPIED)
    starts.append(end)
    states.append(OFFLINE)
    plan.shift_end[i] = end
    _add_flaps(starts, states, params, rng)


def _dwell(state: int, rng: random.Random) -> int:
    """Minutes to hours: long Online spells, short breaks, the odd lunch, wrap-up as Occupied."""
    if state == ONLINE:
        return int(min(max(rng.expovariate(1 / (50 * MINUTE)), 4 * MINUTE), 3 * 3_600_000))
    if state == OCCUPIED:
        return rng.randint(5 * MINUTE, 25 * MINUTE)
    if rng.random() < 0.15:
        return rng.randint(30 * MINUTE, 60 * MINUTE)  # lunch
    return rng.randint(2 * MINUTE, 15 * MINUTE)


def _add_flaps(starts: list[int], states: list[int], params: DayParams, rng: random.Random) -> None:
    """Sub-minute Away spells inside Online spells: a Poisson process over the shift's Online time."""
    online = [(starts[k], starts[k + 1]) for k in range(len(starts) - 1) if states[k] == ONLINE]
    total = sum(b - a for a, b in online)
    if not total or params.flaps_per_shift <= 0:
        return
    rate = params.flaps_per_shift / total
    flaps = []
    for a, b in online:
        t = a + rng.expovariate(rate)
        while t < b:
            duration = rng.randint(*params.flap_ms)
            if t + duration + 2_000 < b:
                flaps.append((int(t), duration))
            t += duration + rng.expovariate(rate)
    for at, duration in flaps:
        _insert_spell(starts, states, at, duration, AWAY)


def _insert_spell(starts: list[int], states: list[int], at: int, duration: int, state: int) -> None:
    """Split the spell containing ``at`` so that ``state`` holds during [at, at + duration)."""
    k = bisect.bisect_right(starts, at) - 1
    resume = states[k]
    starts[k + 1:k + 1] = [at, at + duration]
    states[k + 1:k + 1] = [state, resume]


def _arrivals(params: DayParams, day: int) -> np.ndarray:
    """Chat arrival times (ms, sorted): Poisson per minute, busiest at EMEA/Americas business hours."""
    rng = np.random.default_rng([params.seed, day, 1])
    minutes = np.arange(1440)
    if params.flat_arrivals:
        rate = np.full(1440, params.arrivals_per_min_peak)
    else:
        hours = minutes / 60.0
        rate = params.arrivals_per_min_peak * (0.2 + 0.8 * np.exp(-(((hours - 13.0) / 5.0) ** 2)))
    counts = rng.poisson(rate)
    starts = np.repeat(minutes * MINUTE, counts)
    times = starts + rng.integers(0, MINUTE, size=len(starts))
    times.sort()
    return times[times < LAST_MS - 5 * MINUTE]


def _route_chats(plan: DayPlan, profiles: list[AgentProfile], skill_ids: list[str], params: DayParams, day: int
                 ) -> None:
    arrivals = _arrivals(params, day)
    n_chats = len(arrivals)
    rng = np.random.default_rng([params.seed, day, 2])
    lines = 1 + rng.poisson(max(params.mean_lines - 1, 0), size=n_chats)
    gaps = rng.integers(*LINE_GAP_MS, size=n_chats)
    durations = lines * gaps + rng.integers(20_000, 90_000, size=n_chats)
    waits = rng.integers(2_000, 60_000, size=n_chats)
    skills = rng.integers(0, max(len(skill_ids), 1), size=n_chats)
    probes = rng.integers(0, 1 << 30, size=(n_chats, ROUTING_ATTEMPTS))
    pools = _skill_pools(profiles, skill_ids, params.seed)
    caps = [params.unlimited_cap if p.max_chats < 0 else p.max_chats for p in profiles]
    active: list[list[int]] = [[] for _ in profiles]  # end times of each agent's current chats
    plan.arrival = arrivals.tolist()
    plan.assigned = [-1] * n_chats
    plan.end = [0] * n_chats
    plan.agent = [-1] * n_chats
    plan.lines = lines.tolist()
    plan.skill = skills.tolist()
    ring_rng = random.Random(f"ring:{params.seed}:{day}")
    heap = [(int(arrivals[c] + waits[c]), c, 0) for c in range(n_chats)]
    heapq.heapify(heap)
    while heap:
        at, c, attempt = heapq.heappop(heap)
        pool = pools[plan.skill[c]]
        agent = _pick_agent(plan, pool, caps, active, at, int(probes[c, attempt]))
        if agent >= 0 and ring_rng.random() < params.ring_no_answer:
            flap_at = at + RING_TIMEOUT_MS
            duration = ring_rng.randint(*params.flap_ms)
            if _online_through(plan, agent, at, flap_at + duration + 2_000):
                _insert_spell(plan.seg_starts[agent], plan.seg_states[agent], flap_at, duration, AWAY)
                heapq.heappush(heap, (flap_at, c, attempt))
                continue
        if agent >= 0:
            end = min(at + int(durations[c]), plan.shift_end[agent] - 30_000)
            plan.assigned[c], plan.end[c], plan.agent[c] = at, end, agent
            active[agent].append(end)
            plan.chats_by_agent[agent].append(c)
        elif attempt + 1 < ROUTING_ATTEMPTS:
            heapq.heappush(heap, (at + ROUTING_RETRY_MS, c, attempt + 1))
        else:
            plan.end[c] = min(at + 5_000, LAST_MS)  # the visitor gave up waiting


def _skill_pools(profiles: list[AgentProfile], skill_ids: list[str], seed: int) -> list[list[int]]:
    """Per skill, the agents that can take its chats (that skill, or no skill at all), in a seeded order."""
    rng = random.Random(f"pools:{seed}")
    pools = []
    for skill_id in skill_ids or [None]:
        pool = [i for i, p in enumerate(profiles)
                if p.max_chats != 0 and (not p.skills or any(sid == skill_id for sid, _ in p.skills))]
        rng.shuffle(pool)
        pools.append(pool)
    return pools


def _pick_agent(plan: DayPlan, pool: list[int], caps: list[int], active: list[list[int]], at: int, probe: int
                ) -> int:
    """The least loaded Online agent with a free slot and time left in its shift, among a bounded probe."""
    if not pool:
        return -1
    best, best_load = -1, math.inf
    n = len(pool)
    for j in range(min(n, PROBES)):
        i = pool[(probe + j) % n]
        if plan.shift_end[i] - at < 3 * MINUTE or _state_at(plan, i, at) != ONLINE:
            continue
        ends = active[i]
        if ends:
            ends[:] = [e for e in ends if e > at]
        load = len(ends) / caps[i]
        if load < 1 and load < best_load:
            best, best_load = i, load
            if load == 0:
                break
    return best


def _state_at(plan: DayPlan, i: int, at: int) -> int:
    starts = plan.seg_starts[i]
    return plan.seg_states[i][bisect.bisect_right(starts, at) - 1]


def _online_through(plan: DayPlan, i: int, start: int, end: int) -> bool:
    starts = plan.seg_starts[i]
    k = bisect.bisect_right(starts, start) - 1
    return plan.seg_states[i][k] == ONLINE and (k + 1 == len(starts) or starts[k + 1] > end)
