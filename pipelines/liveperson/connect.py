"""Where the data comes from: the configured LivePerson account, or the embedded simulator when nothing is set.

This is the one module of the API layer that imports the simulator (lazily, only in embedded mode); the client
reads the simulator exactly as it reads the real API, over HTTP.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING

import requests

from pipelines.clock import Clock, system_clock
from pipelines.liveperson.client import AgentApiClient
from pipelines.liveperson.config import ApiSettings, settings_from_env, simulator_settings
from pipelines.liveperson.decode import decode_body, read_limited
from pipelines.liveperson.errors import ApiHttpError, ApiUnreachable, ConfigError
from pipelines.liveperson.parse import parse_domain
from pipelines.liveperson.transport import make_http_session

if TYPE_CHECKING:
    from pipelines.liveperson.simulator import Simulator

log = logging.getLogger(__name__)

DOMAIN_API = "https://api.liveperson.net"
SERVICE = "agentVep"


class Connection:
    """Settings, the clock to stamp snapshots with, the client, and the embedded simulator if one was started."""

    def __init__(
        self,
        settings: ApiSettings,
        *,
        clock: Clock = system_clock,
        simulator: Simulator | None = None,
        owns_simulator: bool = False,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.simulator = simulator
        self._owns_simulator = owns_simulator
        self.client = AgentApiClient(settings, clock)

    @property
    def source(self) -> str:
        return self.settings.source

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the client's sessions (left cached for the next run), then stop a simulator we started."""
        try:
            self.client.close()
        finally:
            if self._owns_simulator and self.simulator is not None:
                self.simulator.stop()


def connect(env: Mapping[str, str] = os.environ, *, simulator: Simulator | None = None) -> Connection:
    """A ``Connection`` to the API that ``env`` configures, else to the embedded simulator.

    ``simulator`` is an already running simulator to use instead of starting one (tests and benchmarks pin its
    clock); it is not stopped on exit.
    """
    settings = settings_from_env(env)
    if settings is not None:
        if simulator is not None:
            raise ValueError("a simulator was given but the environment configures a real LivePerson account")
        if settings.base_url is None:
            settings = settings.with_host(lookup_host(settings))
        log.info("connecting to LivePerson account %s at %s", settings.account_id, settings.source)
        return Connection(settings)
    owns = simulator is None
    if simulator is None:
        simulator = _start_simulator(env)
    try:
        logins = simulator.logins(_int(env, "LP_SIMULATOR_LOGINS", 3))
        settings = simulator_settings(env, base_url=simulator.base_url, account_id=simulator.account_id, logins=logins)
        log.info("no LP_* connection configured: using the embedded simulator at %s", simulator.base_url)
        return Connection(settings, clock=simulator.clock.now, simulator=simulator, owns_simulator=owns)
    except BaseException:
        if owns:
            simulator.stop()
        raise


def lookup_host(settings: ApiSettings, domain_api: str = DOMAIN_API) -> str:
    """The account's Agent API host from LivePerson's Domain API (service ``agentVep``)."""
    endpoint = "domain"
    url = f"{domain_api}/api/account/{settings.account_id}/service/{SERVICE}/baseURI.json"
    with make_http_session(settings) as http:
        try:
            response = http.get(
                url,
                params={"version": "1.0"},
                headers={"Accept": "application/json"},
                timeout=settings.timeout_s,
                verify=settings.ca_bundle or True,
                stream=True,
            )
        except requests.RequestException as exc:
            raise ApiUnreachable(
                f"{endpoint}: the Domain API at {domain_api} did not answer: {type(exc).__name__}"
            ) from None
        with response:
            body = read_limited(response, settings.max_response_bytes, endpoint=endpoint)
            if response.status_code != 200:
                raise ApiHttpError(
                    "Domain API lookup failed", endpoint=endpoint, status=response.status_code, body=body
                )
            payload = decode_body(body, response.headers.get("Content-Type"), endpoint=endpoint, status=200)
    return parse_domain(payload, SERVICE, endpoint=endpoint)


def _start_simulator(env: Mapping[str, str]) -> Simulator:
    """The embedded simulator on a free port, in real time (imported here only: the client never imports it)."""
    from pipelines.liveperson.simulator import SimClock, Simulator, WorldConfig

    config = WorldConfig(seed=_int(env, "LP_SIMULATOR_SEED", 7), agents=_int(env, "LP_SIMULATOR_AGENTS", 50))
    return Simulator(config, clock=SimClock(at=_start_time(env)), port=0).start()


def _start_time(env: Mapping[str, str]) -> datetime | None:
    """``LP_SIMULATOR_START``: the simulated time to start from (ISO 8601), running in real time from there.

    Demos and tests pin a busy hour with it; unset, the simulator follows the wall clock.
    """
    raw = env.get("LP_SIMULATOR_START", "").strip()
    if not raw:
        return None
    try:
        start = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"LP_SIMULATOR_START must be an ISO 8601 time, got {raw!r}") from None
    return start if start.tzinfo else start.replace(tzinfo=UTC)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
