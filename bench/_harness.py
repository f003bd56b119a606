"""Shared benchmark plumbing: the simulator in its own process, the pipeline pointed at it, CPU accounting.

The simulator runs in a separate (spawned) process so that its CPU is counted apart: ``SimProcess.cpu()`` reads
utime+stime from ``/proc/<pid>/stat``, and every figure is printed with the simulator's share of one core beside it.

How a benchmark world is pinned (so that "500 chats x 1,000 events" is exact):
- the simulator's clock is paused at a busy moment ``T`` (14:00 UTC); the child picks monitored agents whose
  listed chats (``chatSessions`` at ``T``) add up to exactly ``chats`` and all end within ``AHEAD_S``;
- the pipeline registers those chats at ``T`` (its ``chat_sessions`` step), then the clock moves to
  ``T + AHEAD_S``, when every chat has ended with all of its events and is still readable: a poll from 0
  brings ``events`` events per chat.
The pipeline reads the simulator exactly as it reads the real API (``LP_BASE_URL``, ``LP_AGENT_LOGINS``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUSY = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
AHEAD_S = 2400  # every chosen chat has ended by T + 40 min, and stays readable (1 h after its end)
TICK = os.sysconf("SC_CLK_TCK")


def _serve(agents: int, chats: int, events: int, open_only: bool, conn: Any) -> None:  # the simulator process
    from pipelines.liveperson.simulator import SimClock, Simulator, WorldConfig

    concurrent = max(chats * (2 if open_only else 1), 500) if agents >= 2000 else None
    config = WorldConfig(seed=7, agents=agents, events_per_chat=events, concurrent_chats=concurrent)
    sim = Simulator(config, clock=SimClock(at=BUSY, paused=True)).start()
    world, now = sim.world, sim.clock.now()
    horizon = now + timedelta(seconds=AHEAD_S)
    picked: dict[str, list[str]] = {}
    total = 0
    for agent in world.agents_at(now):
        if total >= chats:
            break
        now_listed = world.chats_of_agent(agent.profile.agent_id, now)
        listed = [c.chat_id for c in now_listed]
        if not listed or total + len(listed) > chats or (open_only and any(c.ended for c in now_listed)):
            continue
        ends = [world._facts(chat_id).end for chat_id in listed]
        if max(ends) > int(horizon.timestamp() * 1000):
            continue
        picked[agent.profile.user_name] = listed
        total += len(listed)
    conn.send((sim.base_url, sim.account_id, config.password, picked))
    chosen = [chat_id for listed in picked.values() for chat_id in listed]
    while True:
        message = conn.recv()
        if message == "stop":
            break
        if message[0] == "count":  # events of the picked chats that exist at a moment (benchmark planning)
            conn.send(sum(len(world.chat_events(chat_id, message[1])) for chat_id in chosen))
    sim.stop()


@dataclass
class SimProcess:
    """A simulator serving ``agents`` agents in a child process, with ``chats`` chats picked for monitoring."""

    agents: int
    chats: int
    events: int
    open_only: bool = False  # only agents whose listed chats are all still going (active chats)
    pid: int = 0
    base_url: str = ""
    account_id: str = ""
    password: str = ""
    by_login: dict[str, list[str]] = field(default_factory=dict)

    def start(self) -> SimProcess:
        ctx = mp.get_context("spawn")
        self._parent, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, args=(self.agents, self.chats, self.events, self.open_only, child), daemon=True
        )
        self._process.start()
        self.pid = self._process.pid
        self.base_url, self.account_id, self.password, self.by_login = self._parent.recv()
        self._http = requests.Session()
        self._http.trust_env = False
        return self

    def stop(self) -> None:
        self._parent.send("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def chat_count(self) -> int:
        return sum(len(v) for v in self.by_login.values())

    def cpu(self) -> float:
        """CPU seconds (user + system) the simulator process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def events_at(self, at: datetime) -> int:
        """How many events the picked chats have at ``at`` (asked of the world, not over HTTP)."""
        self._parent.send(("count", at))
        return self._parent.recv()

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.post(f"{self.base_url}/_sim/{path}", data=orjson.dumps(body or {}))
        response.raise_for_status()
        return response.json()

    def set_clock(self, at: datetime) -> None:
        self.admin("clock", {"at": at.isoformat(), "paused": True})

    def latency(self, ms: int, endpoint: str = "chat/{chatId}") -> None:
        self.admin("faults", {"endpoint": endpoint, "kind": "latency", "probability": 1.0, "ms": ms})

    def clear_faults(self) -> None:
        self.admin("faults", {"clear": True})

    def env(self, state_dir: str, concurrency: int | None = None) -> dict[str, str]:
        """The pipeline's environment: this simulator as if it were a real account with these logins."""
        logins = [{"username": user, "password": self.password} for user in self.by_login]
        env = {
            "LP_BASE_URL": self.base_url,
            "LP_ACCOUNT_ID": self.account_id,
            "LP_AGENT_LOGINS": orjson.dumps(logins).decode(),
            "LP_STATE_DIR": state_dir,
        }
        if concurrency is not None:
            env["LP_CHAT_CONCURRENCY"] = str(concurrency)
        return env


@dataclass
class Timed:
    """Wall time and CPU of one measured block: this process's, and the simulator's."""

    wall: float = 0.0
    cpu: float = 0.0
    sim_cpu: float = 0.0

    @property
    def sim_share(self) -> str:
        return f"{100 * self.sim_cpu / self.wall:.0f}%" if self.wall else "-"

    @property
    def cpu_share(self) -> str:
        return f"{100 * self.cpu / self.wall:.0f}%" if self.wall else "-"


@contextmanager
def timed(sim: SimProcess | None) -> Iterator[Timed]:
    result = Timed()
    sim0 = sim.cpu() if sim else 0.0
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        yield result
    finally:
        result.wall = time.perf_counter() - t0
        result.cpu = time.process_time() - cpu0
        result.sim_cpu = (sim.cpu() - sim0) if sim else 0.0


class BodyBytes:
    """Counts the response body bytes our client reads (wraps ``session.read_limited``, the one place it reads)."""

    total = 0

    @classmethod
    def install(cls) -> None:
        from pipelines.liveperson import session

        if getattr(session.read_limited, "_counted", False):
            return
        original = session.read_limited

        def counted(*args: Any, **kwargs: Any) -> bytes:
            body = original(*args, **kwargs)
            cls.total += len(body)
            return body

        counted._counted = True  # type: ignore[attr-defined]
        session.read_limited = counted


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tmpdir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)


# ---------------------------------------------------------------- plain HTTP: the floor and the naive script
@dataclass
class RawSession:
    """One logged-in agent session read with plain ``requests`` (no client code of ours)."""

    auth: dict[str, str]
    url: str
    chats: list[str]


def raw_sessions(sim: SimProcess, http: requests.Session) -> list[RawSession]:
    """Log every picked agent in by hand (login + agent session), each with its own cookie header."""
    base = f"{sim.base_url}/api/account/{sim.account_id}"
    sessions = []
    for user, chats in sim.by_login.items():
        login = http.post(f"{base}/login?v=1.3", json={"username": user, "password": sim.password})
        auth = {"Authorization": f"Bearer {login.json()['bearer']}", "Accept": "application/json"}
        created = http.post(f"{base}/agentSession?v=1&NC=true", json={"loginData": ""}, headers=auth)
        auth["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in created.cookies)
        http.cookies.clear()
        sessions.append(RawSession(auth, created.json()["agentSessionLocation"]["link"]["@href"], chats))
    return sessions


def plain_http() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def chat_urls(sessions: list[RawSession], from_: int | dict[str, int] = 0) -> list[tuple[str, dict[str, str], str]]:
    """(chat id, headers, URL of ``chat/{id}?from=N``) for every picked chat."""
    out = []
    for s in sessions:
        for chat_id in s.chats:
            start = from_ if isinstance(from_, int) else from_.get(chat_id, 0)
            out.append((chat_id, s.auth, f"{s.url}/chat/{chat_id}?v=1&NC=true&from={start}"))
    return out


def as_list(value: Any) -> list[Any]:
    return [] if value in (None, "") else value if isinstance(value, list) else [value]


def floor_pass(http: requests.Session, urls: list[tuple[str, dict[str, str], str]]) -> tuple[int, int]:
    """Download and decode every chat once: (events, bytes). No processing at all."""
    events = nbytes = 0
    for _chat_id, headers, url in urls:
        body = http.get(url, headers=headers).content
        nbytes += len(body)
        chat = orjson.loads(body)["chat"]
        events += len(as_list((chat.get("events") or {}).get("event")))
    return events, nbytes


# ---------------------------------------------------------------- our pipeline, step by step
@dataclass
class Pipeline:
    """Our code pointed at a ``SimProcess``: connection, warehouse and Parquet store in a fresh folder."""

    sim: SimProcess
    concurrency: int | None = None
    warehouse_url: str | None = None
    folder: str = field(default_factory=lambda: tmpdir("bench-ours-"))
    state_dir: str | None = None  # share one to reuse the agent sessions (and the simulator's warm cache)

    def __post_init__(self) -> None:
        from pipelines.liveperson.connect import connect
        from pipelines.storage.parquet import ParquetStore
        from pipelines.storage.warehouse import Warehouse

        self.connection = connect(self.sim.env(self.state_dir or f"{self.folder}/state", self.concurrency))
        self.warehouse = Warehouse(self.warehouse_url or f"sqlite:///{self.folder}/warehouse.db")
        self.parquet = ParquetStore(f"{self.folder}/parquet")

    def runner(self) -> Any:
        from pipelines.ingest import SnapshotRunner

        return SnapshotRunner.for_connection(
            self.connection, self.warehouse, self.parquet, interval_s=60, progress=lambda message: None
        )

    def run(
        self, *, before_chats: Callable[[], None] | None = None, measure: Callable[[Any], Any] | None = None
    ) -> tuple[Any, Any]:
        """One run, the steps of ``run_snapshot`` in its order under the writer lock; ``before_chats`` runs
        between registering chats and polling them (the benchmark moves the simulator's clock there), and
        ``measure(step)`` wraps the chat polling step. Returns (the chat step's result, the run summary)."""
        from pipelines.storage.lock import writer_lock

        with writer_lock(self.warehouse, 10.0) as acquired:
            assert acquired
            runner = self.runner()
            runner.begin()
            for step in (runner.available_agents, runner.session_availability, runner.chat_slots, runner.chat_sessions):
                step()
            if before_chats:
                before_chats()
            result = measure(runner.chat_events) if measure else runner.chat_events()
            return result, runner.finish()

    def close(self) -> None:
        self.connection.close()
        self.warehouse.dispose()


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table, columns right-aligned except the first."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(n: float) -> str:
    return f"{n:,.0f}"
