"""How fast the simulator serves ``availableAgents`` and chat polling to one ``requests.Session`` client.

The server runs in its own process, so the CPU share printed is the server's alone (from /proc/<pid>/stat):
well under 100% of a core means the client, not the server, is the bottleneck.

    python bench/simulator_throughput.py [--agents 5000 --chats 500 --events 1000 --seconds 10]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUSY = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
TICK = os.sysconf("SC_CLK_TCK")


def serve(agents: int, chats: int, events: int, conn) -> None:  # runs in the server process
    """Start a simulator, pick ``chats`` readable chats (ended ones first: all their events exist), report, wait."""
    from pipelines.liveperson.simulator import SimClock, Simulator, WorldConfig

    config = WorldConfig(seed=7, agents=agents, events_per_chat=events, concurrent_chats=chats)
    sim = Simulator(config, clock=SimClock(at=BUSY, speed=1.0)).start()
    now = sim.clock.now()
    owned: list[tuple[bool, str, str]] = []
    for agent in sim.world.agents_at(now):
        for chat in sim.world.chats_of_agent(agent.profile.agent_id, now):
            owned.append((not chat.ended, agent.profile.user_name, chat.chat_id))
    owned.sort()
    by_login: dict[str, list[str]] = {}
    for _, user, chat_id in owned[:chats]:
        by_login.setdefault(user, []).append(chat_id)
    conn.send((sim.base_url, sim.account_id, config.password, by_login))
    conn.recv()
    sim.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


@dataclass
class Result:
    name: str
    requests: int
    items: int
    nbytes: int
    wall: float
    cpu: float
    client_cpu: float

    def row(self) -> str:
        return (f"{self.name:<26}{self.requests / self.wall:>12,.0f}{self.items / self.wall:>14,.0f}"
                f"{self.nbytes / self.wall / 1e6:>10,.1f}{100 * self.cpu / self.wall:>12.0f}%"
                f"{100 * self.client_cpu / self.wall:>12.0f}%")


def measure(name: str, pid: int, seconds: float, step: Callable[[], tuple[int, int]], once: bool = False) -> Result:
    """Repeat ``step`` (returns items, bytes) for ``seconds`` (or once), timing it against the server's CPU."""
    cpu0, client0, t0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
    n = items = nbytes = 0
    while True:
        got, size = step()
        n, items, nbytes = n + 1, items + got, nbytes + size
        if once or time.perf_counter() - t0 >= seconds:
            break
    wall = time.perf_counter() - t0
    return Result(name, n, items, nbytes, wall, cpu_seconds(pid) - cpu0, time.process_time() - client0)


def as_list(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(args.agents, args.chats, args.events, child), daemon=True)
    server.start()
    base, account, password, by_login = parent.recv()
    http = requests.Session()
    http.trust_env = False  # no proxy look-ups from the environment on every request: measure the server
    http.headers["Accept"] = "application/json"
    sessions: list[tuple[dict[str, str], str, list[str]]] = []
    for user, chat_ids in by_login.items():
        login = http.post(f"{base}/api/account/{account}/login?v=1.3", json={"username": user, "password": password})
        auth = {"Authorization": f"Bearer {login.json()['bearer']}"}
        created = http.post(f"{base}/api/account/{account}/agentSession?v=1&NC=true", json={"loginData": ""},
                            headers=auth)
        # Each agent session's cookie travels in its own header: one shared jar of hundreds of cookies would make
        # http.cookiejar's per-request scan (milliseconds) the thing measured.
        auth["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in created.cookies)
        http.cookies.clear()
        sessions.append((auth, created.json()["agentSessionLocation"]["link"]["@href"], chat_ids))
    polls = [(auth, f"{url}/chat/{chat_id}?from=0") for auth, url, chat_ids in sessions for chat_id in chat_ids]
    first_auth, first_url, _ = sessions[0]
    print(f"simulator pid {server.pid}: {args.agents} agents, {len(polls)} chats "
          f"(~{args.events} events each) over {len(sessions)} agent sessions; one requests.Session client\n")

    def agents_step() -> tuple[int, int]:
        response = http.get(f"{first_url}/availableAgents?v=1&NC=true", headers=first_auth)
        return len(as_list((orjson.loads(response.content)["availableAgents"]["agents"] or {}).get("agent"))), len(
            response.content)

    cursor = [0]

    def chat_step() -> tuple[int, int]:
        auth, url = polls[cursor[0] % len(polls)]
        cursor[0] += 1
        response = http.get(url, headers=auth)
        return len(as_list(orjson.loads(response.content)["chat"]["events"]["event"])), len(response.content)

    def chat_pass() -> tuple[int, int]:
        total = [chat_step() for _ in polls]
        return sum(t[0] for t in total), sum(t[1] for t in total)

    results = [measure("availableAgents", server.pid, args.seconds, agents_step)]
    cold = measure("chat polling (1st pass)", server.pid, 0, chat_pass, once=True)
    cold.requests = len(polls)
    results += [cold, measure("chat polling (cached)", server.pid, args.seconds, chat_step)]
    print(f"{'resource':<26}{'requests/s':>12}{'items/s':>14}{'MB/s':>10}{'server CPU':>13}{'client CPU':>13}")
    for result in results:
        print(result.row())
    print("\nitems: agents for availableAgents, events for chat polling; CPU: share of one core.")
    parent.send("stop")
    server.join(timeout=10)


if __name__ == "__main__":
    main()
