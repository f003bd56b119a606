"""The simulator's deterministic world: agents, their states and their chats at any simulated time.

Every UTC day is replayed from the seed on its own (``world_day``), so any process computes the same world at the
same time and ground truth exists for any window. Replayed days and generated chats are kept in small LRU caches;
per-request calls are ``searchsorted``/``bisect`` lookups over a day's precomputed arrays.

Modelling choices (documented because tests and the ETL's reports depend on them):
- Agents work every day; no shift and no chat spans midnight UTC. Everyone is Offline at 00:00:00 and shifts end by
  23:59:59. Shift starts follow the sun (blocks from 00:00 to 16:00 UTC), so some agents are Online at any hour.
- An agent's state changes are Online spells broken by Away and Occupied spells (minutes to an hour), sub-minute
  Away flaps, and a few-second Away 20 s after a chat offer it did not accept (that chat then goes to another agent).
- A chat is routed, after a short wait, to the least loaded Online agent (within a bounded probe) that has its skill
  (or no skills), a free slot (``maxChats`` -1 counts as ``unlimited_chats_cap``) and time left in its shift; a chat
  no agent takes within a few tries is abandoned (it ends with no agent and appears in no ``chatSessions``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from pipelines.liveperson.simulator import world_day as wd
from pipelines.liveperson.simulator.world_chat import (
    ChatEvents,
    ChatFacts,
    chat_id_for,
    chat_session_key,
    parse_chat_id,
    seed_tag,
)
from pipelines.liveperson.simulator.world_profiles import AgentProfile, build_groups, build_profiles, build_skills

__all__ = ["AgentNow", "AgentProfile", "ChatNow", "StateSpan", "World", "WorldConfig"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class WorldConfig:
    """Everything the world is a function of; two worlds with equal configs are identical.

    - ``seed``: the world's seed; ``agents`` (up to 5,000), ``skills``, ``groups``: the account's size.
    - ``account_id``; ``password``: every agent logs in with its ``user_name`` and this password.
    - ``peak_chats_per_minute``: chat arrival rate at the busiest hour (13:00 UTC; nights get a fifth of it).
      None: 0.08 per agent, at most 40 a minute (about 35,000 chats a day, which keeps a day's replay fast).
    - ``mean_lines_per_chat``: visitor and agent lines per chat (a chat lasts about 30 s per line).
    - ``events_per_chat``: benchmarks: every answered chat has exactly this many events (lines get denser;
      never fewer than its opening and closing events; chats nobody answered keep their two or three).
    - ``concurrent_chats``: benchmarks: a flat arrival rate all day that keeps about this many chats going,
      as far as Online capacity allows (500 needs some 2,000 agents).
    - ``flaps_per_shift``: mean sub-minute Away flaps per shift on top of those from unaccepted offers;
      ``flap_seconds``: their duration range; ``ring_no_answer``: share of offers an agent does not accept.
    - ``chat_list_retention_s``: how long an ended chat stays listed in its agent's ``chatSessions``;
      ``chat_resource_retention_s``: how long after its end a chat stays readable (then 404).
    - ``chat_timeout_s``: the ``chatTimeout`` chat info serves; ``shift_hours``: mean shift length.
    - ``unlimited_chats_cap``: how many chats routing gives an agent whose ``maxChats`` is -1.
    - ``day_cache_size``: replayed days kept (LRU; a 5,000-agent day is some tens of MB);
      ``chat_cache_events``: events of generated chats kept (LRU by chat; about 0.5 KB an event), enough for
      500 chats of 1,000 events to be served as the same objects poll after poll.
    """

    seed: int = 7
    agents: int = 50
    skills: int = 8
    groups: int = 5
    account_id: str = "90412079"
    password: str = "simulator"
    peak_chats_per_minute: float | None = None
    mean_lines_per_chat: float = 12.0
    events_per_chat: int | None = None
    concurrent_chats: int | None = None
    flaps_per_shift: float = 3.0
    flap_seconds: tuple[int, int] = (3, 45)
    ring_no_answer: float = 0.05
    chat_list_retention_s: int = 600
    chat_resource_retention_s: int = 3600
    chat_timeout_s: int = 40
    shift_hours: float = 8.5
    unlimited_chats_cap: int = 8
    day_cache_size: int = 4
    chat_cache_events: int = 750_000

    def __post_init__(self) -> None:
        """Refuse settings that would make a silently empty or broken world."""
        problems = [name for name, ok in (
            ("agents", self.agents >= 1), ("skills", self.skills >= 0), ("groups", self.groups >= 0),
            ("mean_lines_per_chat", self.mean_lines_per_chat >= 1),
            ("events_per_chat", self.events_per_chat is None or self.events_per_chat >= 1),
            ("concurrent_chats", self.concurrent_chats is None or self.concurrent_chats >= 0),
            ("peak_chats_per_minute", self.peak_chats_per_minute is None or self.peak_chats_per_minute >= 0),
            ("flaps_per_shift", self.flaps_per_shift >= 0),
            ("flap_seconds", 1 <= self.flap_seconds[0] <= self.flap_seconds[1] < 60),
            ("ring_no_answer", 0 <= self.ring_no_answer < 1),
            ("shift_hours", 5 <= self.shift_hours <= 11),
            ("unlimited_chats_cap", self.unlimited_chats_cap >= 1),
            ("day_cache_size", self.day_cache_size >= 1),
        ) if not ok]
        if problems:
            raise ValueError(f"WorldConfig: invalid {', '.join(problems)}")

    def day_params(self) -> wd.DayParams:
        mean_chat_min = (self.mean_lines_per_chat * sum(wd.LINE_GAP_MS) / 2 + 55_000) / wd.MINUTE
        if self.concurrent_chats is not None:
            rate, flat = self.concurrent_chats / mean_chat_min, True
        elif self.peak_chats_per_minute is not None:
            rate, flat = self.peak_chats_per_minute, False
        else:
            rate, flat = min(0.08 * self.agents, 40.0), False
        return wd.DayParams(
            seed=self.seed,
            arrivals_per_min_peak=rate,
            flat_arrivals=flat,
            mean_lines=self.mean_lines_per_chat,
            flaps_per_shift=self.flaps_per_shift,
            flap_ms=(self.flap_seconds[0] * 1000, self.flap_seconds[1] * 1000),
            shift_ms=int(self.shift_hours * 3_600_000),
            unlimited_cap=self.unlimited_chats_cap,
            ring_no_answer=self.ring_no_answer,
        )


class AgentNow(NamedTuple):
    """One agent at one moment. A named tuple, not a dataclass: ``agents_at`` makes thousands per request."""

    profile: AgentProfile
    chat_state: int
    voice_state: int
    elapsed_ms: int  # 0 for Offline agents, like the published example
    chats: int


@dataclass(frozen=True, slots=True)
class ChatNow:
    chat_id: str
    chat_session_key: str
    start_time: datetime
    ended: bool


@dataclass(frozen=True, slots=True)
class StateSpan:
    agent_id: str
    state_code: int
    start: datetime
    end: datetime


class World:
    """The account at any simulated moment; thread-safe, cheap per call once a day has been replayed."""

    def __init__(self, config: WorldConfig) -> None:
        self.config = config
        self.account_id = config.account_id
        self.skills = build_skills(config.seed, config.skills)
        self.groups = build_groups(config.seed, config.groups)
        self.agents = build_profiles(config.seed, config.agents, self.skills, self.groups)
        self._index = {p.agent_id: i for i, p in enumerate(self.agents)}
        self._by_login = {p.user_name: p for p in self.agents}
        self._params = config.day_params()
        self._tag = seed_tag(config.seed)
        self._max_chats = np.array([p.max_chats for p in self.agents], dtype=np.int64)
        self._voice = np.array([p.voice_enabled for p in self.agents], dtype=bool)
        self._skill_member = {
            sid: np.array([any(s == sid for s, _ in p.skills) for p in self.agents], dtype=bool)
            for sid, _ in self.skills
        }
        self._days: OrderedDict[int, wd.DayPlan] = OrderedDict()
        self._chats: OrderedDict[str, ChatEvents] = OrderedDict()
        self._cached_events = 0
        self._last_agents: tuple[datetime, list[AgentNow]] | None = None
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()

    # ---- replay caches -------------------------------------------------------------------------------------

    def day_plan(self, day: int) -> wd.DayPlan:
        """The replayed day (a ``date.toordinal()``), from the cache or replayed once even under concurrency."""
        with self._lock:
            plan = self._days.get(day)
            if plan is not None:
                self._days.move_to_end(day)
                return plan
        with self._build_lock:
            with self._lock:
                plan = self._days.get(day)
            if plan is None:
                plan = wd.build_day(self._params, self.agents, [sid for sid, _ in self.skills], day)
            with self._lock:
                self._days[day] = plan
                self._days.move_to_end(day)
                while len(self._days) > self.config.day_cache_size:
                    self._days.popitem(last=False)
            return plan

    def _chat(self, chat_id: str) -> ChatEvents | None:
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is not None:
                self._chats.move_to_end(chat_id)
                return chat
        facts = self._facts(chat_id)
        if facts is None:
            return None
        built = ChatEvents(self.config.seed, facts, self.config.events_per_chat)
        with self._lock:
            chat = self._chats.setdefault(chat_id, built)  # a racing builder made the same chat: keep one
            self._chats.move_to_end(chat_id)
            if chat is built:
                self._cached_events += len(built.events)
            while self._cached_events > self.config.chat_cache_events and len(self._chats) > 1:
                self._cached_events -= len(self._chats.popitem(last=False)[1].events)
        return chat

    def _facts(self, chat_id: str) -> ChatFacts | None:
        ref = parse_chat_id(self._tag, chat_id)
        if ref is None:
            return None
        plan = self.day_plan(ref.day)
        c = ref.index
        if c >= len(plan.arrival):
            return None
        base = _day_start_ms(ref.day)
        agent = plan.agent[c]
        profile = self.agents[agent] if agent >= 0 else None
        skill = self.skills[plan.skill[c]] if self.skills else None
        return ChatFacts(
            chat_id=chat_id,
            day=ref.day,
            index=c,
            arrival=base + plan.arrival[c],
            assigned=base + plan.assigned[c] if agent >= 0 else None,
            end=base + plan.end[c],
            lines=plan.lines[c],
            agent_id=profile.agent_id if profile else None,
            agent_name=profile.nickname if profile else None,
            skill=skill,
        )

    # ---- agents --------------------------------------------------------------------------------------------

    def agent_by_login(self, user_name: str) -> AgentProfile | None:
        return self._by_login.get(user_name)

    def logins(self, n: int) -> list[tuple[str, str]]:
        """``n`` logins of agents that take chats, picked greedily to cover the most hours of the day first."""
        takers = sorted((p for p in self.agents if p.max_chats != 0), key=lambda p: (p.shift_start_h, p.agent_id))
        blocks: dict[float, list[AgentProfile]] = {}
        for p in takers:
            blocks.setdefault(p.shift_start_h, []).append(p)
        quarters = [0] * 96
        picked: list[AgentProfile] = []
        while len(picked) < min(n, len(takers)):
            def gain(hour: float) -> float:
                return sum(1 / (1 + quarters[q]) for q in _shift_quarters(hour, self.config.shift_hours))

            hour = max((h for h in blocks if blocks[h]), key=lambda h: (gain(h), -h))
            picked.append(blocks[hour].pop(0))
            for q in _shift_quarters(hour, self.config.shift_hours):
                quarters[q] += 1
        return [(p.user_name, self.config.password) for p in picked]

    def _lookup(self, t: datetime) -> tuple[wd.DayPlan, int]:
        t = _utc(t)
        plan = self.day_plan(t.date().toordinal())
        ms = (t.hour * 3600 + t.minute * 60 + t.second) * 1000 + t.microsecond // 1000
        return plan, ms

    def _arrays_at(self, t: datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """States, elapsed ms, voice states and chat counts of all agents at ``t``."""
        plan, ms = self._lookup(t)
        states, starts = plan.states_at(ms)
        elapsed = np.where(states == wd.OFFLINE, 0, ms - starts)
        voice = np.where(self._voice & ((states == wd.ONLINE) | (states == wd.AWAY)), states, wd.OFFLINE)
        return states, elapsed, voice, plan.chat_counts_at(ms)

    def agents_at(self, t: datetime) -> list[AgentNow]:
        """Every agent's state at ``t``; the last answer is kept, since a paused clock asks for the same ``t``."""
        last = self._last_agents
        if last is not None and last[0] == t:
            return list(last[1])
        states, elapsed, voice, chats = (a.tolist() for a in self._arrays_at(t))
        agents = list(map(AgentNow, self.agents, states, voice, elapsed, chats))
        self._last_agents = (t, agents)
        return list(agents)

    def agent_at(self, agent_id: str, t: datetime) -> AgentNow | None:
        i = self._index.get(agent_id)
        if i is None:
            return None
        plan, ms = self._lookup(t)
        k = int(np.searchsorted(plan.seg_keys, plan.agent_base[i] + ms, side="right")) - 1
        state = int(plan.seg_state_arr[k])
        elapsed = 0 if state == wd.OFFLINE else ms - int(plan.seg_start_arr[k])
        voice = state if self.agents[i].voice_enabled and state in (wd.ONLINE, wd.AWAY) else wd.OFFLINE
        chats = sum(1 for c in plan.chats_by_agent[i] if plan.assigned[c] <= ms < plan.end[c])
        return AgentNow(self.agents[i], state, voice, elapsed, chats)

    def available_slots(self, t: datetime, skill: str | None = None, agent: str | None = None) -> int:
        """Free chat slots of Online agents (by skill name or id, or one agent's login); -1 when unlimited."""
        states, _, _, chats = self._arrays_at(t)
        mask = (states == wd.ONLINE) & (self._max_chats != 0)
        if agent is not None:
            profile = self._by_login.get(agent)
            if profile is None:
                return 0
            only = np.zeros(len(self.agents), dtype=bool)
            only[self._index[profile.agent_id]] = True
            mask &= only
        if skill is not None:
            sid = next((s for s, name in self.skills if skill in (s, name)), None)
            if sid is None:
                return 0
            mask &= self._skill_member[sid]
        if np.any(self._max_chats[mask] < 0):
            return -1
        return int(np.maximum(self._max_chats[mask] - chats[mask], 0).sum())

    def state_history(self, start: datetime, end: datetime, agent_ids: list[str] | None = None
                      ) -> list[StateSpan]:
        """Exact state spans clipped to [start, end), contiguous per agent (a state running over midnight,
        i.e. Offline, is one span), ordered by agent then time."""
        start, end = _utc(start), _utc(end)
        if end <= start:
            return []
        indices = list(range(len(self.agents))) if agent_ids is None else [
            self._index[a] for a in agent_ids if a in self._index]
        first, last = start.date().toordinal(), (end - timedelta(microseconds=1)).date().toordinal()
        plans = [self.day_plan(d) for d in range(first, last + 1)]
        lo, hi = _epoch_ms(start), _epoch_ms(end)
        spans = []
        for i in indices:
            agent_id = self.agents[i].agent_id
            current: list[int] | None = None  # [state, start_ms, end_ms]
            for plan in plans:
                base = _day_start_ms(plan.day)
                starts, states = plan.segments(i)
                for k, state in enumerate(states):
                    s = base + starts[k]
                    e = base + starts[k + 1] if k + 1 < len(starts) else base + wd.DAY_MS
                    if e <= lo or s >= hi:
                        continue
                    s, e = max(s, lo), min(e, hi)
                    if current is not None and current[0] == state and current[2] == s:
                        current[2] = e
                        continue
                    if current is not None:
                        spans.append(StateSpan(agent_id, current[0], _dt(current[1]), _dt(current[2])))
                    current = [state, s, e]
            if current is not None:
                spans.append(StateSpan(agent_id, current[0], _dt(current[1]), _dt(current[2])))
        return spans

    # ---- chats ---------------------------------------------------------------------------------------------

    def chats_of_agent(self, agent_id: str, t: datetime) -> list[ChatNow]:
        """What the agent's ``chatSessions`` lists at ``t``: its current chats and those ended within retention."""
        i = self._index.get(agent_id)
        if i is None:
            return []
        now = _epoch_ms(_utc(t))
        keep = self.config.chat_list_retention_s * 1000
        found = []
        for day in sorted({_day_of(now - keep), _day_of(now)}):
            plan = self.day_plan(day)
            base = _day_start_ms(day)
            for c in plan.chats_by_agent[i]:
                if base + plan.assigned[c] > now:
                    break
                end = base + plan.end[c]
                if now - end < keep:
                    chat_id = chat_id_for(self._tag, day, c)
                    found.append(ChatNow(chat_id, chat_session_key(chat_id), _dt(base + plan.arrival[c]), end <= now))
        return found

    def chats_between(self, start: datetime, end: datetime, agent_id: str | None = None) -> list[str]:
        """Ids of chats alive at some moment of [start, end] (all, or those assigned to ``agent_id``)."""
        lo, hi = _epoch_ms(_utc(start)), _epoch_ms(_utc(end))
        if hi < lo:
            return []
        i = None if agent_id is None else self._index.get(agent_id, -2)
        found = []
        for day in range(_day_of(lo), _day_of(hi) + 1):
            plan = self.day_plan(day)
            base = _day_start_ms(day)
            candidates = range(len(plan.arrival)) if i is None else plan.chats_by_agent[i] if i >= 0 else ()
            for c in candidates:
                if base + plan.arrival[c] <= hi and base + plan.end[c] >= lo:
                    found.append(chat_id_for(self._tag, day, c))
        return found

    def chat_exists(self, chat_id: str, t: datetime) -> bool:
        facts = self._facts(chat_id)
        if facts is None:
            return False
        now = _epoch_ms(_utc(t))
        return facts.arrival <= now <= facts.end + self.config.chat_resource_retention_s * 1000

    def chat_owner(self, chat_id: str) -> str | None:
        facts = self._facts(chat_id)
        return facts.agent_id if facts else None

    def chat_events(self, chat_id: str, t: datetime, from_id: int = 0) -> list[dict[str, Any]]:
        """Events that happened by ``t`` with id >= ``from_id``; the same (cached) dict objects on every call."""
        chat = self._chat(chat_id)
        if chat is None:
            return []
        return chat.events[max(from_id, 0):chat.visible(_epoch_ms(_utc(t)))]

    def all_chat_events(self, chat_id: str) -> list[dict[str, Any]]:
        chat = self._chat(chat_id)
        return list(chat.events) if chat else []

    def readable_chat(self, chat_id: str, t: datetime, owner: str) -> tuple[ChatEvents, int] | None:
        """The chat and ``t`` in epoch ms when ``owner``'s agent session may read it at ``t`` (it exists, is
        within retention and is ``owner``'s), else None: ``chat_exists`` + ``chat_owner`` in one cached lookup, for
        the server's per-request path. The chat's events are built only once that check has passed."""
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is not None:
                self._chats.move_to_end(chat_id)
        facts = chat.facts if chat is not None else self._facts(chat_id)
        if facts is None or str(facts.agent_id) != owner:
            return None
        now = _epoch_ms(_utc(t))
        if not facts.arrival <= now <= facts.end + self.config.chat_resource_retention_s * 1000:
            return None
        chat = chat if chat is not None else self._chat(chat_id)
        return (chat, now) if chat is not None else None

    def chat_info(self, chat_id: str, t: datetime) -> dict[str, Any]:
        """The chat's info at ``t`` in the API's JSON shape, without links; ``{}`` for an unknown chat."""
        chat = self._chat(chat_id)
        if chat is None:
            return {}
        return chat.info(_epoch_ms(_utc(t)), self.config.chat_timeout_s)


def _shift_quarters(start_h: float, length_h: float) -> range:
    """The quarter hours of the day a shift of this block surely covers, whatever the day's jitter: from a quarter
    after its nominal start to an hour before its nominal end (shifts end by midnight)."""
    return range(int(start_h * 4) + 1, min(int((start_h + length_h) * 4) - 4, 96))


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return t.astimezone(UTC)


def _epoch_ms(t: datetime) -> int:
    return (t.date().toordinal() - EPOCH_ORDINAL) * wd.DAY_MS + (
        (t.hour * 3600 + t.minute * 60 + t.second) * 1000 + t.microsecond // 1000)


def _day_start_ms(day: int) -> int:
    return (day - EPOCH_ORDINAL) * wd.DAY_MS


def _day_of(epoch_ms: int) -> int:
    return epoch_ms // wd.DAY_MS + EPOCH_ORDINAL


def _dt(epoch_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=epoch_ms)
