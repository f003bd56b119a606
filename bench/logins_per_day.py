"""Logins and agent sessions per simulated day for agents polled every minute, each poll a fresh client.

Each simulated minute builds a new ``AgentApiClient`` on the same ``LP_STATE_DIR`` (as a new ``snapshot_job``
process would), reads ``availableAgents`` and the agent's ``chatSessions``, and closes; the simulator counts the
logins and agent sessions it served. Usage: ``python bench/logins_per_day.py [--hours 24] [--agents 3]``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from datetime import UTC, datetime

from pipelines.liveperson.client import AgentApiClient
from pipelines.liveperson.config import simulator_settings
from pipelines.liveperson.simulator import SimClock, Simulator, WorldConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--agents", type=int, default=3, help="monitored logins")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = datetime(2026, 11, 26, tzinfo=UTC)
    with (
        tempfile.TemporaryDirectory() as state_dir,
        Simulator(WorldConfig(seed=7, agents=50), clock=SimClock(at=start, paused=True)).start() as sim,
    ):
        logins = sim.logins(args.agents)
        settings = simulator_settings(
            {"LP_STATE_DIR": state_dir}, base_url=sim.base_url, account_id=sim.account_id, logins=logins
        )
        polls = int(args.hours * 60)
        for _ in range(polls):
            with AgentApiClient(settings, sim.clock.now, chat_sessions_interval_s=0) as client:
                client.available_agents()
                for session in client.sessions:
                    client.chat_sessions(session)
            sim.clock.advance(60)
        print(f"{'login':24s} {'polls':>6s} {'logins':>7s} {'agent sessions':>15s}")
        for username, _password in logins:
            print(
                f"{username:24s} {polls:>6d} {sim.stats.logins(username):>7d} {sim.stats.agent_sessions(username):>15d}"
            )


if __name__ == "__main__":
    main()
