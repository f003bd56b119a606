"""Ground truth: in-process views over windows, and a window written to a file and read back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.liveperson.simulator.truth import Truth, read_truth, write_truth
from pipelines.liveperson.simulator.world import World, WorldConfig

START = datetime(2026, 11, 27, 11, 45, tzinfo=UTC)
END = START + timedelta(minutes=30)


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldConfig(agents=30))


def test_a_written_window_reads_back_as_the_worlds_history_and_chats(world: World, tmp_path: Path):
    path = write_truth(world, START, END, tmp_path / "truth.jsonl")
    truth = read_truth(path)
    assert (truth.start, truth.end) == (START, END)
    assert truth.spans == world.state_history(START, END)
    assert list(truth.chats) == world.chats_between(START, END)
    assert truth.chats
    for chat_id, chat in truth.chats.items():
        assert chat["agent_id"] == world.chat_owner(chat_id)
        assert chat["events"] == world.chat_events(chat_id, END)
        assert chat["info"] == world.chat_info(chat_id, END)
    assert [p.name for p in tmp_path.iterdir()] == ["truth.jsonl"]  # no temporary file left behind


def test_a_file_without_its_window_line_is_refused(tmp_path: Path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"kind": "state", "agent_id": "1", "state_code": 1, "start": "x", "end": "y"}\n')
    with pytest.raises(ValueError):
        read_truth(path)


def test_truth_chat_events_are_the_whole_chat_or_what_had_happened_by_then(world: World):
    truth = Truth(world)
    chat_id = world.chats_between(START, END)[0]
    whole = truth.chat_events(chat_id)
    assert whole == world.all_chat_events(chat_id) and whole[-1]["state"] == "ended"
    first_time = datetime.fromisoformat(whole[0]["time"])
    assert truth.chat_events(chat_id, until=first_time) == whole[:1]


def test_truth_chats_of_agent_are_those_its_chat_sessions_listed_in_the_window(world: World):
    truth = Truth(world)
    seen: dict[str, set[str]] = {}
    moment = START
    while moment <= END:
        for agent in world.agents:
            for chat in world.chats_of_agent(agent.agent_id, moment):
                if not chat.ended:
                    seen.setdefault(agent.agent_id, set()).add(chat.chat_id)
        moment += timedelta(seconds=20)
    assert seen
    for agent_id, chat_ids in seen.items():
        assert chat_ids <= set(truth.chats_of_agent(agent_id, START, END))


def test_truth_agent_state_history_is_the_worlds(world: World):
    agent_id = world.agents[0].agent_id
    assert Truth(world).agent_state_history(START, END, [agent_id]) == world.state_history(START, END, [agent_id])
