"""The Agent API client: one ``AgentSession`` per monitored login, each resource returned as parsed records.

Account-wide resources (``availableAgents``, ``availableSlots``) are read once, by the first healthy session; the
chat resources are agent-scoped, so each chat is read through the session of the agent that has it. Per-chat polls
run on a bounded thread pool (the connection pool of each session is sized to match). This module is exactly what
reads the real API: it never imports the simulator.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any

from pipelines.clock import Clock, system_clock
from pipelines.liveperson.config import ApiSettings
from pipelines.liveperson.errors import ApiUnreachable, ChatNotFound, LivePersonError
from pipelines.liveperson.parse import (
    parse_availability,
    parse_available_agents,
    parse_available_slots,
    parse_chat,
    parse_chat_info,
    parse_chat_sessions,
    parse_events,
    parse_session_info,
)
from pipelines.liveperson.ratelimit import MinInterval
from pipelines.liveperson.records import (
    AgentSessionInfo,
    Availability,
    AvailableAgentsPage,
    ChatEvent,
    ChatInfo,
    ChatResource,
    ChatSessionRef,
)
from pipelines.liveperson.session import AgentSession
from pipelines.liveperson.session_cache import LoginBreaker, SessionCache

log = logging.getLogger(__name__)

CHAT_SESSIONS_MIN_INTERVAL_S = 2.0  # LivePerson: poll chatSessions no more often than every 2 seconds

ChatRequest = tuple[AgentSession, str, int | None]


class AgentApiClient:
    """Reads the Agent API for every monitored login; sessions open lazily, on first use."""

    def __init__(
        self,
        settings: ApiSettings,
        clock: Clock = system_clock,
        *,
        chat_sessions_interval_s: float = CHAT_SESSIONS_MIN_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self.clock = clock
        cache = SessionCache(settings.state_dir)
        breaker = LoginBreaker(settings.state_dir)
        self.sessions: tuple[AgentSession, ...] = tuple(
            AgentSession(settings, credentials, clock=clock, cache=cache, breaker=breaker)
            for credentials in settings.logins
        )
        self._chat_sessions_interval = MinInterval(chat_sessions_interval_s)

    def __enter__(self) -> AgentApiClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self, *, logout: bool = False) -> None:
        """Release every session; they stay open and cached for the next run unless ``logout``."""
        for session in self.sessions:
            session.close(logout=logout)

    def healthy_session(self) -> AgentSession:
        """The first session that opens; a login that fails is skipped (logged), an unreachable API is raised."""
        first_error: LivePersonError | None = None
        for session in self.sessions:
            try:
                session.open()
            except ApiUnreachable:
                raise
            except LivePersonError as exc:
                log.warning("%s: cannot open a session (%s); trying the next login", session.label, exc)
                first_error = first_error or exc
                continue
            return session
        if first_error is None:
            raise LivePersonError("no monitored login is configured")
        raise first_error

    # --- per session ---

    def info(self, session: AgentSession | None = None) -> AgentSessionInfo:
        """The agent logged in on ``session`` (default: the first healthy one); sets ``session.agent_id``."""
        session = session or self.healthy_session()
        info = parse_session_info(session.get("info", endpoint="info"), endpoint="info")
        session.agent_id = info.agent_id
        return info

    def availability(self, session: AgentSession | None = None) -> Availability:
        session = session or self.healthy_session()
        return parse_availability(session.get("availability", endpoint="availability"), endpoint="availability")

    def chat_sessions(self, session: AgentSession | None = None) -> list[ChatSessionRef]:
        """The chats of ``session``'s agent; waits so as to call it at most every 2 s per session."""
        session = session or self.healthy_session()
        self._chat_sessions_interval.wait((session, "chatSessions"))
        return parse_chat_sessions(session.get("chatSessions", endpoint="chatSessions"), endpoint="chatSessions")

    def poll_chat(self, session: AgentSession, chat_id: str, from_: int | None = None) -> ChatResource:
        """``chat/{chatId}?from=N``: new events and info, on the session's current agent session id."""
        endpoint = f"chat/{chat_id}"
        payload = session.get(endpoint, endpoint=endpoint, params=_from(from_), not_found=ChatNotFound)
        return parse_chat(payload, chat_id=chat_id, endpoint=endpoint)

    def chat_events(
        self, session: AgentSession, chat_id: str, from_: int | None = None
    ) -> tuple[list[ChatEvent], int | None]:
        """``chat/{chatId}/events?from=N``: the events and the ``from`` of the next poll."""
        endpoint = f"chat/{chat_id}/events"
        payload = session.get(endpoint, endpoint=endpoint, params=_from(from_), not_found=ChatNotFound)
        return parse_events(payload, chat_id=chat_id, endpoint=endpoint)

    def chat_info(self, session: AgentSession, chat_id: str) -> ChatInfo:
        endpoint = f"chat/{chat_id}/info"
        return parse_chat_info(session.get(endpoint, endpoint=endpoint, not_found=ChatNotFound), endpoint=endpoint)

    def poll_chats(
        self, requests: Sequence[ChatRequest], max_workers: int | None = None, wave: int | None = None
    ) -> Iterator[tuple[ChatRequest, ChatResource | LivePersonError]]:
        """Poll many chats with at most ``max_workers`` (default ``LP_CHAT_CONCURRENCY``) requests in flight.

        Yields each request with its result or its API error as it completes, so that one bad chat never stops
        the others; programming errors propagate. Requests go out in waves of ``wave`` (default
        ``2 x max_workers``): the next wave starts once the caller has taken every result of this one, so memory
        holds one wave's payloads, not a whole run's, and when the caller stores a wave's results (between
        waves) no polling thread competes with it for the GIL (measured: concurrent threads make the caller's
        Python and SQLite work two to three times slower).
        """
        if not requests:
            return
        workers = max(1, min(max_workers or self.settings.chat_concurrency, len(requests)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lp-chat")
        pending = iter(requests)
        futures: dict[Future[ChatResource], ChatRequest] = {}

        def submit(count: int) -> None:
            for request in itertools.islice(pending, count):
                futures[pool.submit(self.poll_chat, *request)] = request

        size = max(1, wave or 2 * workers)
        try:
            submit(size)
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    request = futures.pop(future)
                    error = future.exception()
                    if error is None:
                        yield request, future.result()
                    elif isinstance(error, LivePersonError):
                        yield request, error
                    else:
                        raise error
                if not futures:  # the caller has taken (and stored) the whole wave: start the next
                    submit(size)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # --- account-wide ---

    def available_agents(
        self, skill: str | None = None, chat_state: str | None = None, voice_state: str | None = None
    ) -> AvailableAgentsPage:
        """Every agent of the account (the ``next``/``timeStamp`` link is not followed: undocumented meaning)."""
        params = _params(skill=skill, chatState=chat_state, voiceState=voice_state)
        payload = self.healthy_session().get("availableAgents", endpoint="availableAgents", params=params)
        return parse_available_agents(payload, endpoint="availableAgents")

    def available_slots(
        self, skill: str | None = None, max_wait_time: int | None = None, agent: str | None = None
    ) -> int:
        """How many more chats can be taken (-1: unlimited), optionally for a skill name or one agent login."""
        params = _params(skill=skill, maxWaitTime=max_wait_time, agent=agent)
        payload = self.healthy_session().get("chat/availableSlots", endpoint="chat/availableSlots", params=params)
        return parse_available_slots(payload, endpoint="chat/availableSlots")


def _from(from_: int | None) -> dict[str, int]:
    return {} if from_ is None else {"from": from_}


def _params(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}
