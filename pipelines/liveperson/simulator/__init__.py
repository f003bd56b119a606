"""The embedded simulator of LivePerson's Chat Agent API: a deterministic world served over real HTTP.

``Simulator`` is the facade the rest of the project uses (docs/architecture.md): it builds the world from a
``WorldConfig``, serves it on 127.0.0.1 in a background thread, and exposes the clock, the faults, the ground
truth and the request counters.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from pipelines.liveperson.simulator.auth import Auth, Stats
from pipelines.liveperson.simulator.clock import SimClock
from pipelines.liveperson.simulator.faults import Faults
from pipelines.liveperson.simulator.server import Api, SimulatorHTTPServer
from pipelines.liveperson.simulator.truth import Truth
from pipelines.liveperson.simulator.world import World, WorldConfig

__all__ = ["SimClock", "Simulator", "WorldConfig"]


class Simulator:
    """One simulated account served over HTTP; ``port=0`` picks a free port. Also a context manager."""

    def __init__(
        self,
        config: WorldConfig | None = None,
        clock: SimClock | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        domain_listing: bool = False,
    ) -> None:
        self.config = config or WorldConfig()
        self.clock = clock or SimClock()
        self.world = World(self.config)
        self.truth = Truth(self.world)
        self.faults = Faults(seed=self.config.seed)
        self.stats = Stats()
        credentials = {a.user_name: (self.config.password, str(a.agent_id)) for a in self.world.agents}
        self.auth = Auth(credentials, self.stats)
        self._api = Api(self.world, self.clock, self.truth, self.auth, self.faults, self.stats)
        self._api.domain_listing = domain_listing
        self._address = (host, port)
        self._server: SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Simulator:
        """Bind and serve in a daemon thread; returns self so ``Simulator(...).start()`` reads naturally."""
        if self._server is not None:
            return self
        self._server = SimulatorHTTPServer(self._address, self._api)
        host, port = self._server.server_address[:2]
        self._address = (host, port)  # a restart after stop() comes back on the same port
        self._api.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="liveperson-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and hang up on connected clients; ``start()`` again serves the same world and port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the standalone command)."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if not self._api.base_url:
            raise RuntimeError("the simulator is not started")
        return self._api.base_url

    @property
    def account_id(self) -> str:
        return str(self.world.account_id)

    @property
    def domain_listing(self) -> bool:
        """Whether the Domain API answers in the newer ``{"baseURIs": [...]}`` form."""
        return self._api.domain_listing

    @domain_listing.setter
    def domain_listing(self, value: bool) -> None:
        self._api.domain_listing = bool(value)

    def logins(self, n: int) -> list[tuple[str, str]]:
        """``n`` agent logins ``(username, password)`` spread over the day's shifts."""
        return self.world.logins(n)

    def expire_sessions(self, username: str | None = None) -> int:
        """Kill agent sessions and bearers (of one user, or all): their next call answers 401."""
        return self.auth.expire(username)

    def block_user(self, username: str) -> None:
        """From now on, logins of ``username`` answer 451."""
        self.auth.block(username)

    def unblock_user(self, username: str) -> None:
        self.auth.unblock(username)

    def __repr__(self) -> str:
        state: Any = self._api.base_url or "not started"
        return f"Simulator(account_id={self.account_id!r}, {state})"
