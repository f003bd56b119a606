"""Helpers of the client tests: settings pointed at a test simulator, and logins of agents that have chats."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.liveperson.config import ApiSettings, simulator_settings

if TYPE_CHECKING:
    from pipelines.liveperson.simulator import Simulator

FAST_RETRIES = {"LP_RETRY_BASE_S": "0.05", "LP_TIMEOUT_S": "5"}


def settings_for(
    sim: Simulator, state_dir: Path, logins: list[tuple[str, str]] | None = None, **env: str
) -> ApiSettings:
    """Settings for ``sim`` with its first login (or ``logins``), retries shrunk to 50 ms."""
    return simulator_settings(
        {"LP_STATE_DIR": str(state_dir), **FAST_RETRIES, **env},
        base_url=sim.base_url,
        account_id=sim.account_id,
        logins=logins if logins is not None else sim.logins(1),
    )


def logins_with_chats(sim: Simulator, n: int) -> list[tuple[str, str, list[str]]]:
    """``n`` agents listing chats right now, as ``(username, password, chat ids)``."""
    now = sim.clock.now()
    found = []
    for agent in sim.world.agents:
        chats = [c.chat_id for c in sim.world.chats_of_agent(agent.agent_id, now)]
        if chats:
            found.append((agent.user_name, sim.config.password, chats))
        if len(found) == n:
            return found
    raise AssertionError(f"fewer than {n} agents have chats at {now}")


def ongoing_chat(sim: Simulator) -> tuple[str, str, str]:
    """``(username, password, chat id)`` of a chat that has not ended yet, so that it gains events."""
    now = sim.clock.now()
    for agent in sim.world.agents:
        for chat in sim.world.chats_of_agent(agent.agent_id, now):
            if not chat.ended:
                return agent.user_name, sim.config.password, chat.chat_id
    raise AssertionError(f"no chat is ongoing at {now}")
