"""Typed records that the parsers return: one class per thing the API describes.

Fields are already cleaned of the API's quirks (strings as numbers, single-vs-list, ``@`` spellings, nulls).
Each record that the contract stores verbatim keeps the payload item it came from in ``raw`` (a dict), so that
unknown fields are never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CHAT_STATE_NAMES: dict[int, str] = {1: "Offline", 2: "Online", 3: "Occupied", 4: "Away"}


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What the Login Service answers. ``bearer`` and ``csrf`` are secrets: never log or store them."""

    bearer: str = field(repr=False)
    csrf: str | None = field(repr=False)
    session_ttl_ms: int | None
    user_id: str | None
    login_name: str | None


@dataclass(frozen=True, slots=True)
class SkillRef:
    skill_id: str
    skill_name: str | None = None


@dataclass(frozen=True, slots=True)
class Availability:
    chat: str | None
    voice: str | None


@dataclass(frozen=True, slots=True)
class AgentSessionInfo:
    """``GET .../info``: the agent logged in on this agent session."""

    agent_id: str
    agent_name: str | None
    display_name: str | None
    login_name: str | None
    max_chats: int | None
    availability: Availability
    skills: tuple[SkillRef, ...]


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One item of ``availableAgents``. ``chat_state`` is the name, or ``unknown:<code>`` for unknown codes."""

    agent_id: str
    chat_state_code: int | None
    chat_state: str | None
    voice_state_code: int | None
    voice_state: str | None
    max_chats: int | None
    chats: int | None
    elapsed_in_state_ms: int | None
    user_name: str | None
    nickname: str | None
    email: str | None
    privilege_group: str | None
    agent_group_id: str | None
    agent_group_name: str | None
    skills: tuple[SkillRef, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class AvailableAgentsPage:
    agents: tuple[AgentRecord, ...]
    next_href: str | None


@dataclass(frozen=True, slots=True)
class ChatSessionRef:
    """One item of ``chatSessions``; ``chat_id`` is the last path segment of its ``chat-session`` link."""

    chat_id: str
    href: str
    chat_session_key: str | None
    start_time: datetime | None


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One chat event. ``text`` is the text as served (HTML-escaped, personal data): the normalizer decides."""

    chat_id: str
    event_id: int
    event_type: str
    event_time: datetime | None
    source: str | None
    by: str | None
    state: str | None
    text: str | None
    text_type: str | None
    system_message_id: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ChatInfo:
    """``chat/{chatId}/info`` (also embedded in the chat resource). ``visitor_name`` is personal data."""

    state: str | None
    chat_session_key: str | None
    agent_name: str | None
    agent_id: str | None
    start_time: datetime | None
    last_update: datetime | None
    chat_timeout_s: int | None
    visitor_id: str | None
    visitor_name: str | None
    rt_session_id: str | None
    skill_id: str | None
    skill_name: str | None
    visit_id: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ChatResource:
    """``chat/{chatId}?from=N``: new events, the chat's info, and the ``from`` of the next poll."""

    chat_id: str
    events: tuple[ChatEvent, ...]
    info: ChatInfo | None
    next_from: int | None
    links: dict[str, str] = field(compare=False)
