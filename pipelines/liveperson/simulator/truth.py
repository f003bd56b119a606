"""Ground truth of the simulated world: what really happened, to check what the pipeline reconstructed.

``Truth`` answers in-process questions (the simulator's ``sim.truth``); ``write_truth`` / ``read_truth`` put a
window's truth in a JSON-lines file so that other processes, notebooks or CI artifacts can compare against it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipelines.liveperson.simulator.world import StateSpan, World


class Truth:
    """Read-only views of the world over windows, in the names ``docs/architecture.md`` gives them."""

    def __init__(self, world: World) -> None:
        self.world = world

    def agent_state_history(self, start: datetime, end: datetime, agent_ids: list[str] | None = None
                            ) -> list[StateSpan]:
        return self.world.state_history(start, end, agent_ids)

    def chat_events(self, chat_id: str, until: datetime | None = None) -> list[dict[str, Any]]:
        """The chat's events exactly as served: all of them, or those that happened by ``until``."""
        if until is None:
            return self.world.all_chat_events(chat_id)
        return self.world.chat_events(chat_id, until)

    def chats_of_agent(self, agent_id: str, start: datetime, end: datetime) -> list[str]:
        """Ids of the chats assigned to the agent that were alive at some moment of [start, end]."""
        return self.world.chats_between(start, end, agent_id)


@dataclass
class TruthFile:
    """A window's truth as read back: state spans, and each chat's facts with its events by then."""

    start: datetime
    end: datetime
    spans: list[StateSpan] = field(default_factory=list)
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)


def write_truth(world: World, start: datetime, end: datetime, path: str | os.PathLike[str]) -> Path:
    """Write [start, end)'s agent state history and the chats alive in it (events up to ``end``) as JSON lines.

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(orjson.dumps({"kind": "window", "start": start, "end": end}) + b"\n")
        for span in world.state_history(start, end):
            out.write(orjson.dumps({"kind": "state", "agent_id": span.agent_id, "state_code": span.state_code,
                                    "start": span.start, "end": span.end}) + b"\n")
        for chat_id in world.chats_between(start, end):
            out.write(orjson.dumps({"kind": "chat", "chat_id": chat_id, "agent_id": world.chat_owner(chat_id),
                                    "info": world.chat_info(chat_id, end),
                                    "events": world.chat_events(chat_id, end)}) + b"\n")
    os.replace(tmp, target)
    return target


def read_truth(path: str | os.PathLike[str]) -> TruthFile:
    truth: TruthFile | None = None
    with Path(path).open("rb") as lines:
        for line in lines:
            record = orjson.loads(line)
            kind = record.pop("kind")
            if kind == "window":
                truth = TruthFile(start=datetime.fromisoformat(record["start"]),
                                  end=datetime.fromisoformat(record["end"]))
            elif truth is None:
                raise ValueError(f"{path}: a truth file starts with its window")
            elif kind == "state":
                truth.spans.append(StateSpan(record["agent_id"], record["state_code"],
                                             datetime.fromisoformat(record["start"]),
                                             datetime.fromisoformat(record["end"])))
            elif kind == "chat":
                truth.chats[record.pop("chat_id")] = record
    if truth is None:
        raise ValueError(f"{path}: empty truth file")
    return truth
