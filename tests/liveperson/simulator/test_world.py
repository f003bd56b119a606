"""The simulator's world model: deterministic replay, realistic agent states, chats and their events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from pipelines.liveperson.simulator.world import World, WorldConfig

DAY = datetime(2026, 11, 27, tzinfo=UTC)
NOON = DAY + timedelta(hours=12, minutes=30)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldConfig())


@pytest.fixture(scope="module")
def day_chats(world: World) -> list[str]:
    return world.chats_between(DAY, DAY + timedelta(days=1))


def snapshot(world: World, at: datetime) -> dict:
    """A JSON-ready digest of what the server would serve at ``at``: agents, chat lists, events and infos."""
    agents = [[a.profile.agent_id, a.profile.user_name, a.chat_state, a.voice_state, a.elapsed_ms, a.chats]
              for a in world.agents_at(at)]
    chats = {a[0]: [c.chat_id for c in world.chats_of_agent(a[0], at)] for a in agents}
    some = sorted({c for ids in chats.values() for c in ids})[:5]
    return {"agents": agents, "chats": chats, "events": {c: world.chat_events(c, at) for c in some},
            "infos": {c: world.chat_info(c, at) for c in some}}


def _parse(served: str) -> datetime:
    return datetime.fromisoformat(served)


# ---- determinism ---------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_worlds_in_two_fresh_objects():
    first, second = World(WorldConfig(seed=11)), World(WorldConfig(seed=11))
    for at in (DAY + timedelta(hours=3, seconds=17), NOON, DAY + timedelta(hours=23, minutes=50)):
        assert snapshot(first, at) == snapshot(second, at)
    assert first.agents == second.agents


def test_same_seed_gives_the_identical_world_in_another_process(world: World):
    code = ("import json, sys; from datetime import datetime;"
            "from pipelines.liveperson.simulator.world import World, WorldConfig;"
            "from tests.liveperson.simulator.test_world import snapshot;"
            "print(json.dumps(snapshot(World(WorldConfig()), datetime.fromisoformat(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, NOON.isoformat()], cwd=REPO, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert json.loads(out.stdout) == json.loads(json.dumps(snapshot(world, NOON)))


def test_different_seeds_give_different_worlds(world: World):
    other = World(WorldConfig(seed=8))
    assert [a.agent_id for a in other.agents] != [a.agent_id for a in world.agents]
    assert snapshot(other, NOON)["agents"] != snapshot(world, NOON)["agents"]


def test_a_day_replayed_after_eviction_from_the_cache_is_the_same():
    small = World(WorldConfig(day_cache_size=1))
    before = snapshot(small, NOON)
    small.agents_at(NOON + timedelta(days=1))
    small.agents_at(NOON + timedelta(days=2))
    assert snapshot(small, NOON) == before


# ---- the cast ------------------------------------------------------------------------------------------------


def test_agents_have_unique_numeric_looking_string_ids_and_login_names(world: World):
    ids = [a.agent_id for a in world.agents]
    assert len(set(ids)) == len(ids) == 50
    assert all(isinstance(i, str) and i.isdigit() for i in ids)
    assert len({a.user_name for a in world.agents}) == 50
    assert all(world.agent_by_login(a.user_name) is a for a in world.agents)
    assert world.agent_by_login("nobody") is None


def test_skills_come_in_all_three_shapes_none_one_and_several(world: World):
    shapes = Counter(min(len(a.skills), 2) for a in world.agents)
    assert shapes[0] and shapes[1] and shapes[2]
    known = set(world.skills)
    assert all(set(a.skills) <= known for a in world.agents)
    assert len(world.skills) == 8


def test_max_chats_includes_unlimited_zero_and_mostly_two_to_five(world: World):
    caps = Counter(a.max_chats for a in world.agents)
    assert caps[-1] and caps[0]
    assert sum(n for cap, n in caps.items() if 2 <= cap <= 5) > len(world.agents) / 2


def test_some_agents_belong_to_no_group_shown_as_minus_one_admin(world: World):
    groups = {(a.agent_group_id, a.agent_group_name) for a in world.agents}
    assert ("-1", "Admin") in groups
    assert len(groups) > 2


def test_logins_use_the_configured_password_and_cover_every_hour_of_the_day(world: World):
    logins = world.logins(4)
    assert len({u for u, _ in logins}) == 4
    assert all(password == "simulator" for _, password in logins)
    ids = [world.agent_by_login(u).agent_id for u, _ in logins]
    for hour in range(24):
        at = DAY + timedelta(hours=hour, minutes=30)
        assert any(world.agent_at(i, at).chat_state != 1 for i in ids), f"none of {logins} works at {at}"


# ---- agent states ------------------------------------------------------------------------------------------


def test_offline_agents_report_zero_elapsed_and_the_others_time_since_their_state_began(world: World):
    at = DAY + timedelta(hours=14, minutes=7, seconds=3, milliseconds=250)
    history = world.state_history(DAY, at + timedelta(milliseconds=1))
    current = {s.agent_id: s for s in history if s.end > at}
    for agent in world.agents_at(at):
        span = current[agent.profile.agent_id]
        assert agent.chat_state == span.state_code
        if agent.chat_state == 1:
            assert agent.elapsed_ms == 0
        else:
            assert agent.elapsed_ms == (at - span.start) // timedelta(milliseconds=1)


def test_agent_at_agrees_with_agents_at(world: World):
    for agent in world.agents_at(NOON):
        assert world.agent_at(agent.profile.agent_id, NOON) == agent
    assert world.agent_at("no-such-agent", NOON) is None


def test_everyone_is_offline_at_midnight(world: World):
    assert {a.chat_state for a in world.agents_at(DAY)} == {1}
    assert all(a.chats == 0 for a in world.agents_at(DAY))


def test_state_history_is_clipped_to_the_window_and_contiguous_per_agent(world: World):
    start, end = DAY + timedelta(hours=10, seconds=17), DAY + timedelta(days=1, hours=2)
    spans = world.state_history(start, end)
    by_agent: dict[str, list] = {}
    for span in spans:
        by_agent.setdefault(span.agent_id, []).append(span)
    assert set(by_agent) == {a.agent_id for a in world.agents}
    for agent_spans in by_agent.values():
        assert agent_spans[0].start == start and agent_spans[-1].end == end
        for a, b in pairwise(agent_spans):
            assert a.end == b.start  # no gap, no overlap
            assert a.state_code != b.state_code  # neighbours in the same state are one span
        assert all(s.start < s.end for s in agent_spans)


def test_an_offline_night_over_midnight_is_one_span(world: World):
    spans = world.state_history(DAY + timedelta(hours=23, minutes=59, seconds=59, milliseconds=500),
                                DAY + timedelta(days=1, seconds=1))
    assert all(s.state_code == 1 for s in spans)
    assert len(spans) == len(world.agents)


def test_state_history_of_chosen_agents_only(world: World):
    chosen = [world.agents[3].agent_id, world.agents[7].agent_id]
    spans = world.state_history(DAY, DAY + timedelta(days=1), chosen)
    assert {s.agent_id for s in spans} == set(chosen)


def test_agents_stay_in_a_state_minutes_to_hours_and_work_a_shift_a_day(world: World):
    spans = world.state_history(DAY, DAY + timedelta(days=1))
    working = [s for s in spans if s.state_code != 1]
    on_shift = Counter()
    for s in working:
        on_shift[s.agent_id] += (s.end - s.start).total_seconds() / 3600
    assert all(5 <= hours <= 11 for hours in on_shift.values())
    long_spells = [s for s in working if s.end - s.start >= timedelta(hours=1)]
    assert long_spells and any(s.state_code == 3 for s in working) and any(s.state_code == 4 for s in working)


@pytest.mark.parametrize("agents", [50, 600])
def test_agents_average_at_least_three_sub_minute_flaps_per_working_day(agents: int):
    small = World(WorldConfig(agents=agents))
    spans = small.state_history(DAY, DAY + timedelta(days=1))
    flaps = [s for s in spans if s.state_code == 4 and s.end - s.start < timedelta(minutes=1)]
    workers = {s.agent_id for s in spans if s.state_code != 1}
    print(f"{agents} agents: {len(flaps) / len(workers):.2f} sub-minute Away flaps per agent-day")
    assert len(flaps) / len(workers) >= 3


def test_at_every_hour_some_agents_are_online_and_some_chats_are_going_on(world: World):
    for hour in range(24):
        at = DAY + timedelta(hours=hour, minutes=30)
        agents = world.agents_at(at)
        assert any(a.chat_state == 2 for a in agents), at
        assert sum(a.chats for a in agents) > 0, at


def test_business_hours_are_busier_than_the_night(world: World):
    def busy(hour: int) -> int:
        return sum(a.chats for a in world.agents_at(DAY + timedelta(hours=hour, minutes=30)))

    assert busy(12) > 2 * busy(3)


def test_voice_state_is_a_known_code_and_mostly_offline(world: World):
    voice = Counter(a.voice_state for a in world.agents_at(NOON))
    assert set(voice) <= {1, 2, 3, 4}
    assert voice[1] > len(world.agents) / 2


# ---- chats and capacity ------------------------------------------------------------------------------------


def test_agents_never_hold_more_chats_than_max_chats(world: World):
    cap = world.config.unlimited_chats_cap
    for minute in range(0, 24 * 60, 7):
        for agent in world.agents_at(DAY + timedelta(minutes=minute, seconds=13)):
            limit = cap if agent.profile.max_chats < 0 else agent.profile.max_chats
            assert 0 <= agent.chats <= limit


def test_an_agents_chat_count_is_its_listed_chats_that_have_not_ended(world: World):
    for agent in world.agents_at(NOON):
        listed = world.chats_of_agent(agent.profile.agent_id, NOON)
        assert agent.chats == sum(not c.ended for c in listed)


def test_chats_are_taken_only_by_online_agents_with_the_skill_or_no_skills(world: World, day_chats: list[str]):
    skills = {a.agent_id: {s for s, _ in a.skills} for a in world.agents}
    taken = 0
    for chat_id in day_chats[::10]:
        events = world.all_chat_events(chat_id)
        chatting = next((e for e in events if e.get("state") == "chatting"), None)
        if chatting is None:
            continue
        taken += 1
        owner = world.chat_owner(chat_id)
        info = world.chat_info(chat_id, _parse(events[-1]["time"]))
        assert info["agentId"] == owner
        assert not skills[owner] or info["skillId"] in skills[owner]
        assert world.agent_at(owner, _parse(chatting["time"])).chat_state == 2
    assert taken > 100


def test_chat_ids_look_like_livepersons(day_chats: list[str]):
    assert len(day_chats) > 1000
    assert all(len(c) == 20 and c[0] == "H" and c[1:].isdigit() for c in day_chats)


def test_chats_of_agent_lists_current_chats_and_ended_ones_within_the_list_retention(world: World):
    owner, chat = next((a.profile.agent_id, c) for a in world.agents_at(NOON)
                       for c in world.chats_of_agent(a.profile.agent_id, NOON) if not c.ended)
    end = _parse(world.all_chat_events(chat.chat_id)[-1]["time"])
    keep = timedelta(seconds=world.config.chat_list_retention_s)
    listed = [c for c in world.chats_of_agent(owner, end + keep - timedelta(seconds=1)) if c.chat_id == chat.chat_id]
    assert listed and listed[0].ended and listed[0].chat_session_key == chat.chat_session_key
    assert listed[0].start_time == chat.start_time
    assert chat.chat_id not in [c.chat_id for c in world.chats_of_agent(owner, end + keep + timedelta(seconds=1))]


def test_chats_listed_just_after_midnight_include_those_that_ended_just_before(world: World):
    after_midnight = DAY + timedelta(days=1, seconds=1)
    keep = timedelta(seconds=world.config.chat_list_retention_s)
    recent = [c for c in world.chats_between(after_midnight - keep, DAY + timedelta(days=1)) if world.chat_owner(c)
              and _parse(world.all_chat_events(c)[-1]["time"]) > after_midnight - keep]
    assert recent
    for chat_id in recent:
        assert chat_id in [c.chat_id for c in world.chats_of_agent(world.chat_owner(chat_id), after_midnight)]


def test_a_chat_exists_from_its_start_until_the_resource_retention_after_its_end(world: World, day_chats: list[str]):
    chat_id = day_chats[len(day_chats) // 2]
    events = world.all_chat_events(chat_id)
    start, end = _parse(events[0]["time"]), _parse(events[-1]["time"])
    keep = timedelta(seconds=world.config.chat_resource_retention_s)
    assert not world.chat_exists(chat_id, start - timedelta(seconds=1))
    assert world.chat_exists(chat_id, start)
    assert world.chat_exists(chat_id, end + keep - timedelta(seconds=1))
    assert not world.chat_exists(chat_id, end + keep + timedelta(seconds=1))


def test_unknown_chat_ids_do_not_exist(world: World, day_chats: list[str]):
    other_seed = World(WorldConfig(seed=99)).chats_between(NOON, NOON)[0]
    past_the_last = day_chats[-1][:12] + "99999999"
    for chat_id in ("nonsense", "H123", other_seed, past_the_last):
        assert not world.chat_exists(chat_id, NOON)
        assert world.chat_owner(chat_id) is None
        assert world.chat_events(chat_id, NOON) == []
        assert world.chat_info(chat_id, NOON) == {}


def test_some_visitors_give_up_before_any_agent_takes_their_chat(world: World, day_chats: list[str]):
    abandoned = [c for c in day_chats if world.chat_owner(c) is None]
    assert abandoned
    states = [e["state"] for e in world.all_chat_events(abandoned[0]) if e["@type"] == "state"]
    assert states == ["waiting", "ended"]


def test_available_slots_count_free_capacity_of_online_agents(world: World):
    agents = world.agents_at(NOON)
    online = [a for a in agents if a.chat_state == 2 and a.profile.max_chats != 0]
    unlimited = any(a.profile.max_chats < 0 for a in online)
    expected = -1 if unlimited else sum(max(a.profile.max_chats - a.chats, 0) for a in online)
    assert world.available_slots(NOON) == expected
    limited = next(a for a in online if a.profile.max_chats > 0)
    assert world.available_slots(NOON, agent=limited.profile.user_name) == limited.profile.max_chats - limited.chats
    offline = next(a for a in agents if a.chat_state == 1)
    assert world.available_slots(NOON, agent=offline.profile.user_name) == 0
    assert world.available_slots(NOON, skill="no such skill") == 0


def test_available_slots_by_skill_accepts_its_name_or_id(world: World):
    skill_id, name = world.skills[0]
    assert world.available_slots(NOON, skill=name) == world.available_slots(NOON, skill=skill_id)


# ---- chat events -------------------------------------------------------------------------------------------


def test_chat_events_have_contiguous_ids_non_decreasing_times_and_open_waiting_close_ended(
        world: World, day_chats: list[str]):
    for chat_id in day_chats[::5]:
        events = world.all_chat_events(chat_id)
        assert [e["@id"] for e in events] == [str(i) for i in range(len(events))]
        times = [_parse(e["time"]) for e in events]
        assert times == sorted(times) and all(t.utcoffset() is not None for t in times)
        assert (events[0]["@type"], events[0]["state"]) == ("state", "waiting")
        assert (events[-1]["@type"], events[-1]["state"]) == ("state", "ended")


def test_an_answered_chat_opens_with_a_system_line_naming_the_agent(world: World, day_chats: list[str]):
    chat_id = next(c for c in day_chats if world.chat_owner(c))
    events = world.all_chat_events(chat_id)
    system = next(e for e in events if e["@type"] == "line")
    agent = next(a for a in world.agents if a.agent_id == world.chat_owner(chat_id))
    assert system["source"] == "system" and system["by"] == "info" and str(system["systemMessageId"]) == "4"
    assert system["text"] == f"You are now chatting with {agent.nickname}"


def test_chat_events_show_the_documented_variety(world: World, day_chats: list[str]):
    events = [e for c in day_chats[::3] for e in world.all_chat_events(c)]
    types = Counter(e["@type"] for e in events)
    assert types["state"] and types["line"] and types["url"]
    assert types["a2a-transfer"] + types["cobrowse-offer"] > 0  # types the docs do not name
    assert {e["source"] for e in events if e["@type"] == "line"} == {"system", "agent", "visitor"}
    assert any(e.get("subType") == "REGULAR" for e in events)
    nicknames = {a.nickname for a in world.agents}
    assert any(e.get("by") in nicknames for e in events if e.get("source") == "agent")
    assert any(e.get("by") == "agent" for e in events)
    assert {type(e["systemMessageId"]) for e in events if "systemMessageId" in e} == {int, str}
    assert any("." in e["time"] for e in events) and any("." not in e["time"] for e in events)


def test_chat_events_from_an_id_return_exactly_the_suffix(world: World):
    chat_id = next(c.chat_id for a in world.agents_at(NOON) for c in world.chats_of_agent(a.profile.agent_id, NOON))
    later = NOON + timedelta(hours=1)
    everything = world.chat_events(chat_id, later)
    for n in range(len(everything) + 2):
        assert world.chat_events(chat_id, later, from_id=n) == everything[n:]


def test_chat_events_show_only_what_has_happened_by_then(world: World, day_chats: list[str]):
    chat_id = next(c for c in day_chats if len(world.all_chat_events(c)) > 8)
    events = world.all_chat_events(chat_id)
    middle = _parse(events[5]["time"]) + timedelta(milliseconds=1)
    assert world.chat_events(chat_id, middle) == [e for e in events if _parse(e["time"]) <= middle]


def test_chat_events_are_the_same_objects_on_every_call_even_across_threads(world: World, day_chats: list[str]):
    chat_id = day_chats[17]
    later = DAY + timedelta(days=1)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: world.chat_events(chat_id, later), range(8)))
    assert all(len(r) == len(results[0]) and all(a is b for a, b in zip(r, results[0], strict=True))
               for r in results)


def test_chat_info_follows_the_chat_from_waiting_to_chatting_to_ended(world: World, day_chats: list[str]):
    chat_id = next(c for c in day_chats if world.chat_owner(c))
    events = world.all_chat_events(chat_id)
    chatting = next(e for e in events if e.get("state") == "chatting")
    start, accepted, end = _parse(events[0]["time"]), _parse(chatting["time"]), _parse(events[-1]["time"])
    waiting = world.chat_info(chat_id, start)
    assert waiting["state"] == "waiting" and waiting["agentId"] == ""
    during = world.chat_info(chat_id, accepted + timedelta(milliseconds=1))
    assert during["state"] == "chatting" and during["agentId"] == world.chat_owner(chat_id)
    done = world.chat_info(chat_id, end + timedelta(minutes=1))
    assert done["state"] == "ended" and done["lastUpdate"] == events[-1]["time"]
    assert done["startTime"] == events[0]["time"] and done["chatTimeout"] == "40"
    listed = next(c for c in world.chats_of_agent(world.chat_owner(chat_id), end) if c.chat_id == chat_id)
    assert done["chatSessionKey"] == listed.chat_session_key
    for field in ("visitorId", "visitorName", "rtSessionId", "agentTyping", "visitorTyping", "skillId",
                  "skillName", "visitId"):
        assert done[field] not in (None, "")


def test_chats_have_distinct_session_keys_and_rt_session_ids(world: World, day_chats: list[str]):
    infos = [world.chat_info(c, NOON) for c in day_chats[::4]]
    assert len({i["chatSessionKey"] for i in infos}) == len(infos)
    assert len({i["rtSessionId"] for i in infos}) == len(infos)


# ---- scale and benchmark overrides ---------------------------------------------------------------------------


def test_a_five_thousand_agent_world_builds_and_answers():
    started, cpu = time.perf_counter(), time.process_time()
    big = World(WorldConfig(agents=5000))
    agents = big.agents_at(NOON)
    print(f"5,000 agents: profiles + day replay {time.perf_counter() - started:.2f} s wall, "
          f"{time.process_time() - cpu:.2f} s CPU")
    started = time.perf_counter()
    for second in range(1, 11):
        big.agents_at(NOON + timedelta(seconds=second))  # a new moment each time: no cached answer
    print(f"5,000 agents: agents_at {(time.perf_counter() - started) * 100:.1f} ms per call")
    assert len(agents) == 5000 and sum(a.chat_state == 2 for a in agents) > 500
    assert sum(a.chats for a in agents) > 50


def test_benchmark_overrides_give_about_the_asked_concurrency_and_exact_events_per_chat():
    started, cpu = time.perf_counter(), time.process_time()
    bench = World(WorldConfig(agents=5000, concurrent_chats=500, events_per_chat=1000))
    going = sum(a.chats for a in bench.agents_at(NOON))
    print(f"5,000 agents, 500 concurrent chats: day replay {time.perf_counter() - started:.2f} s wall, "
          f"{time.process_time() - cpu:.2f} s CPU; {going} chats going at noon")
    assert 350 <= going <= 650
    chat_id = next(c.chat_id for a in bench.agents_at(NOON) if a.chats
                   for c in bench.chats_of_agent(a.profile.agent_id, NOON))
    started = time.perf_counter()
    events = bench.all_chat_events(chat_id)
    print(f"1,000 events generated in {(time.perf_counter() - started) * 1000:.1f} ms")
    assert len(events) == 1000 and events[-1]["state"] == "ended"


def test_chats_evicted_from_a_small_event_cache_come_back_equal(day_chats: list[str]):
    small = World(WorldConfig(chat_cache_events=40))
    first = small.all_chat_events(day_chats[0])
    for chat_id in day_chats[1:20]:
        small.all_chat_events(chat_id)
    again = small.chat_events(day_chats[0], DAY + timedelta(days=1))
    assert again == first and again[0] is not first[0]  # rebuilt, not kept: the budget holds


def test_unaccepted_offers_alone_make_agents_flap_away_for_seconds():
    def short_aways(config: WorldConfig) -> int:
        spans = World(config).state_history(DAY, DAY + timedelta(days=1))
        return sum(s.state_code == 4 and s.end - s.start < timedelta(minutes=1) for s in spans)

    assert short_aways(WorldConfig(flaps_per_shift=0)) > 0
    assert short_aways(WorldConfig(flaps_per_shift=0, ring_no_answer=0)) == 0


@pytest.mark.parametrize("change", [{"agents": 0}, {"flap_seconds": (30, 90)}, {"shift_hours": 14},
                                    {"events_per_chat": 0}, {"ring_no_answer": 1.0}])
def test_settings_that_would_break_the_world_are_refused(change: dict):
    with pytest.raises(ValueError):
        WorldConfig(**change)


def test_agents_at_the_same_moment_again_is_the_same_answer_and_safe_to_modify(world: World):
    first = world.agents_at(NOON)
    first.clear()
    assert world.agents_at(NOON) == world.agents_at(NOON + timedelta(0)) and len(world.agents_at(NOON)) == 50


def test_a_chats_info_is_a_function_of_its_info_version(world: World, day_chats: list[str]):
    """The server caches answers by ``info_version``: equal versions must mean equal infos, at any moment."""
    chat_id = next(c for c in day_chats if world.chat_owner(c))
    events = world.all_chat_events(chat_id)
    start, end = _parse(events[0]["time"]), _parse(events[-1]["time"])
    found = world.readable_chat(chat_id, start, world.chat_owner(chat_id))
    assert found is not None
    chat = found[0]
    by_version: dict = {}
    at = start - timedelta(seconds=1)
    while at <= end + timedelta(seconds=2):
        ms = int(at.timestamp() * 1000)
        info = world.chat_info(chat_id, at)
        assert by_version.setdefault(chat.info_version(ms), info) == info
        at += timedelta(milliseconds=250)
    assert len(by_version) > 3


def test_readable_chat_is_chat_exists_and_chat_owner_in_one(world: World, day_chats: list[str]):
    for chat_id in day_chats[::50]:
        owner = world.chat_owner(chat_id)
        for at in (NOON, DAY + timedelta(hours=3), DAY + timedelta(hours=23)):
            found = world.readable_chat(chat_id, at, str(owner))
            assert (found is not None) == world.chat_exists(chat_id, at)
            assert world.readable_chat(chat_id, at, "not-the-owner") is None
    assert world.readable_chat("H0000000000000000000", NOON, "x") is None
