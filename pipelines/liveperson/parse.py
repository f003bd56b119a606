"""Decoded payloads -> typed records: every quirk of the Agent API's payloads is handled here, in one place.

One function per payload kind. Each takes the decoded JSON (or XML decoded to the same structure by
``decode.py``) and returns the records of ``records.py``, or raises ``PayloadError`` — never a bare
``KeyError``/``TypeError``/``ValueError`` — so that a run can dead-letter the body and go on.

Quirks handled (the published examples disagree with each other):
- a list with one item may come as the item itself, and "none" as ``null``, ``""`` or a missing key;
- numbers as strings (``"maxChats": "-1"``), ids as numbers (``"id": 0``): ids are kept as text, counts as ints;
- attributes with or without ``@`` (``@id``/``id``, ``@type``/``type``, ``@href``/``href``, ``@rel``/``rel``);
- times as ISO-8601 (with or without milliseconds, ``Z`` or an offset) or epoch milliseconds, all made UTC.
Unknown fields and event types are preserved: records keep the payload item they came from in ``raw`` (the
dict as served, not a copy).

Policy for unusable content:
- the top of a payload must have its key and be an object; list resources (``availableAgents``,
  ``chatSessions``, ``events``) may be ``null`` there, meaning "none" (XML's empty element); anything else
  raises ``PayloadError`` for the whole payload;
- an item inside a list that cannot become a record (an agent or event that is not an object or has no id, an
  event without a type, a chat session without a link, a skill without an id) also raises ``PayloadError`` for
  the WHOLE payload: nothing is silently dropped, the whole body goes to the dead-letter table and can be
  replayed once the parser learns the new shape;
- a field with a bad value (an unreadable time, a non-numeric count) becomes ``None`` in the record, its value
  still in ``raw``. Links that lack an href or rel are ignored: they are navigation, not data.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

import orjson

from pipelines.liveperson.errors import PayloadError
from pipelines.liveperson.records import (
    CHAT_STATE_NAMES,
    AgentRecord,
    AgentSessionInfo,
    Availability,
    AvailableAgentsPage,
    ChatEvent,
    ChatInfo,
    ChatResource,
    ChatSessionRef,
    LoginResult,
    SkillRef,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = 2**63  # numbers must lie in [-2**63, 2**63)
_INT32 = 2**31  # counts and state codes: INTEGER columns, 32 bits on PostgreSQL
_LOGIN_SECRETS = frozenset({"bearer", "csrf", "wsuk"})
# ChatEvent's slot setters in field order: the frozen dataclass's own __init__ goes through object.__setattr__ per
# field, three times slower, and events number hundreds of thousands per run (bench/stages.py).
_EVENT_FIELDS = ("chat_id", "event_id", "event_type", "event_time", "source", "by", "state", "text", "text_type",
                 "system_message_id", "raw")
if tuple(f.name for f in fields(ChatEvent)) != _EVENT_FIELDS:  # a new field must be set in _events() too
    raise ImportError("ChatEvent's fields changed: update parse._EVENT_FIELDS and parse._events")
_EVENT_SLOTS = tuple(ChatEvent.__dict__[name].__set__ for name in _EVENT_FIELDS)
_STATE_CODES: dict[str, int] = {name: code for code, name in CHAT_STATE_NAMES.items()}


# --- helpers: total over any JSON-ish value; bad values become None, never an exception ---


def as_list(value: Any) -> list[Any]:
    """The API's single-vs-list quirk: ``None`` -> ``[]``, a list as is, anything else -> ``[value]``."""
    if value is None:
        return []
    if type(value) is list:
        return value
    return [value]


def attr(item: Any, name: str) -> Any:
    """An attribute under either spelling the API uses: ``@name`` (resources, XML) or ``name`` (some examples)."""
    if type(item) is not dict:
        return None
    value = item.get("@" + name)
    return item.get(name) if value is None else value


def to_int(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string (``"-1"``, ``" 908445 "``); else ``None``, also
    for a number outside the signed 64-bit range, which no column (Arrow int64, SQL BIGINT) can hold."""
    if type(value) is int:
        number = value
    elif type(value) is str:
        try:
            number = int(value)
        except ValueError:
            number = _integral_float(value)
    elif type(value) is float:
        number = int(value) if value.is_integer() else None
    else:
        return None
    return number if number is not None and -_INT64 <= number < _INT64 else None


def _count(value: Any) -> int | None:
    """A count or state code for an INTEGER column: ``to_int`` within 32 bits, else ``None``."""
    number = to_int(value)
    return number if number is not None and -_INT32 <= number < _INT32 else None


def _integral_float(text: str) -> int | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def to_utc_datetime(value: Any) -> datetime | None:
    """A UTC datetime from ISO-8601 (``Z`` or an offset; a time without offset is taken as UTC) or epoch ms."""
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return _from_epoch_ms(to_int(value))
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            return None
    if type(value) is int or type(value) is float:
        return _from_epoch_ms(to_int(value))
    return None


def _from_epoch_ms(ms: int | None) -> datetime | None:
    if ms is None:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return None


def _text(value: Any) -> str | None:
    """A text field: a string as served; a number (some ids arrive as numbers) as its decimal text."""
    if type(value) is str:
        return value
    if type(value) is int or type(value) is float:
        return str(value)
    if type(value) is dict:  # an XML element with attributes: its text is under "#text"
        return _text(value.get("#text"))
    return None


def _id_text(value: Any) -> str | None:
    """An id kept as text; an empty id is no id."""
    text = _text(value)
    return text if text else None


def _state(value: Any) -> tuple[int | None, str | None]:
    """A state code (1-4) and its name; an unknown code passes through as ``unknown:<code>``."""
    if value is None:
        return None, None
    code = _count(value)
    if code is not None:
        return code, CHAT_STATE_NAMES.get(code, f"unknown:{code}")
    text = _text(value)
    if text is None:
        return None, None
    known = _STATE_CODES.get(text)
    return (known, text) if known is not None else (None, f"unknown:{text}")


def _links(value: Any) -> dict[str, str]:
    """``rel -> href`` of a resource's ``link`` entries (one or a list); the first of a rel wins."""
    links: dict[str, str] = {}
    for link in as_list(value):
        rel, href = _text(attr(link, "rel")), _text(attr(link, "href"))
        if rel and href and rel not in links:
            links[rel] = href
    return links


def _link_to(value: Any, rel: str) -> str | None:
    """The href of the link with ``rel``; failing that, of the first link with an href (a lone, unlabelled link)."""
    links = as_list(value)
    href = _links(links).get(rel)
    if href is None:
        href = next((h for h in (_text(attr(link, "href")) for link in links) if h), None)
    return href


def _from_query(href: str | None) -> int | None:
    """The ``from=`` of a ``next`` link: the id of the first event the next poll returns."""
    parts = _split(href)
    values = parse_qs(parts.query).get("from") if parts else None
    return to_int(values[0]) if values else None


def _last_path_segment(href: str | None) -> str:
    """An id at the end of a link (chat, agent session, visit), without query; ``""`` when there is none."""
    parts = _split(href)
    return parts.path.rstrip("/").rsplit("/", 1)[-1] if parts else ""


def _split(href: str | None) -> SplitResult | None:
    if not href:
        return None
    try:
        return urlsplit(href)
    except ValueError:  # e.g. an unclosed "[" in the host
        return None


def _dump(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError: not JSON (e.g. an int beyond 64 bits)
        return repr(payload).encode("utf-8", "backslashreplace")


def _error(message: str, payload: Any, endpoint: str) -> PayloadError:
    return PayloadError(message, endpoint=endpoint, status=None, body=_dump(payload))


def _top(payload: Any, key: str, endpoint: str, *, none_ok: bool = False) -> dict[str, Any] | None:
    """The object under a payload's top-level key; a missing key or a wrong type there is an unusable shape."""
    if type(payload) is not dict or key not in payload:
        raise _error(f"expected an object with {key!r}", payload, endpoint)
    value = payload[key]
    if type(value) is dict or (value is None and none_ok):
        return value
    raise _error(f"{key!r} is {type(value).__name__}, not an object", payload, endpoint)


# --- session ---


def parse_login(payload: Any, *, endpoint: str = "login") -> LoginResult:
    """The Login Service's answer; without a bearer there is no session to speak of.

    Its error body withholds the secret fields: a dead letter must never hold a usable credential.
    """
    if type(payload) is not dict:
        raise _error("expected a login object", payload, endpoint)
    bearer = _text(payload.get("bearer"))
    if not bearer:
        withheld = {key: "<withheld>" if key in _LOGIN_SECRETS else value for key, value in payload.items()}
        raise _error("login answer has no bearer", withheld, endpoint)
    config = payload.get("config")
    ttl = payload.get("sessionTTl")
    return LoginResult(
        bearer=bearer,
        csrf=_text(payload.get("csrf")),
        session_ttl_ms=to_int(payload.get("sessionTTL") if ttl is None else ttl),
        user_id=_id_text(attr(config, "userId")),
        login_name=_text(attr(config, "loginName")),
    )


def parse_agent_session_location(payload: Any, *, endpoint: str = "agentSession") -> str:
    """The agent session id: the last path segment of ``agentSessionLocation.link.@href``."""
    location = _top(payload, "agentSessionLocation", endpoint)
    session_id = _last_path_segment(_link_to(location.get("link"), "location"))
    if not session_id:
        raise _error("agentSessionLocation has no link to the agent session", payload, endpoint)
    return session_id


def parse_domain(payload: Any, service: str = "agentVep", *, endpoint: str = "baseURI") -> str:
    """The host of ``service`` from either Domain API form (single object or ``baseURIs`` list)."""
    if type(payload) is not dict:
        raise _error("expected a domain object", payload, endpoint)
    candidates = as_list(payload["baseURIs"]) if "baseURIs" in payload else [payload]
    for candidate in candidates:
        if type(candidate) is not dict:
            raise _error("a baseURIs entry is not an object", payload, endpoint)
        named = candidate.get("service")
        host = _text(candidate.get("baseURI"))
        if host and (named == service or (named is None and candidate is payload)):
            return host
    raise _error(f"no baseURI for service {service!r}", payload, endpoint)


def parse_session_info(payload: Any, *, endpoint: str = "info") -> AgentSessionInfo:
    """``{"info": {...}}``: the agent logged in on this agent session."""
    info = _top(payload, "info", endpoint)
    agent_id = _id_text(attr(info, "id"))
    if agent_id is None:
        raise _error("info has no agent id", payload, endpoint)
    return AgentSessionInfo(
        agent_id=agent_id,
        agent_name=_text(info.get("agentName")),
        display_name=_text(info.get("displayName")),
        login_name=_text(info.get("loginName")),
        max_chats=to_int(attr(info, "maxChats")),
        availability=_availability(info.get("availability")),
        skills=_skills(info.get("skills"), info.get("skillsInfo"), payload, endpoint),
    )


def parse_availability(payload: Any, *, endpoint: str = "availability") -> Availability:
    """``{"availability": {"chat", "voice"}}``; values are kept as served (unknown ones too)."""
    return _availability(_top(payload, "availability", endpoint))


def _availability(value: Any) -> Availability:
    return Availability(chat=_text(attr(value, "chat")), voice=_text(attr(value, "voice")))


# --- agents and capacity ---


def parse_available_agents(payload: Any, *, endpoint: str = "availableAgents") -> AvailableAgentsPage:
    """Every agent of the account with its state, capacity and skills; ``agents`` may be null or one object."""
    page = _top(payload, "availableAgents", endpoint, none_ok=True)
    if page is None:
        return AvailableAgentsPage(agents=(), next_href=None)
    agents = page.get("agents")
    if type(agents) is dict:
        items = as_list(agents.get("agent"))
    elif type(agents) is list:
        items = agents
    elif agents is None or agents == "":
        items = []
    else:
        raise _error("'agents' is neither an object nor a list", payload, endpoint)
    return AvailableAgentsPage(
        agents=tuple(_agent(item, payload, endpoint) for item in items),
        next_href=_links(page.get("link")).get("next"),
    )


def _agent(item: Any, payload: Any, endpoint: str) -> AgentRecord:
    agent_id = _id_text(attr(item, "id"))
    if agent_id is None:
        raise _error("an agent is not an object with an id", payload, endpoint)
    chat_code, chat_state = _state(attr(item, "chatState"))
    voice_code, voice_state = _state(attr(item, "voiceState"))
    return AgentRecord(
        agent_id=agent_id,
        chat_state_code=chat_code,
        chat_state=chat_state,
        voice_state_code=voice_code,
        voice_state=voice_state,
        max_chats=_count(attr(item, "maxChats")),
        chats=_count(attr(item, "chats")),
        elapsed_in_state_ms=to_int(attr(item, "elapsedTimeInState")),
        user_name=_text(item.get("userName")),
        nickname=_text(item.get("nickname")),
        email=_text(item.get("email")),
        privilege_group=_text(item.get("privilegeGroup")),
        agent_group_id=_id_text(attr(item, "agentGroupId")),
        agent_group_name=_text(item.get("agentGroupName")),
        skills=_skills(item.get("skills"), item.get("skillsInfo"), payload, endpoint),
        raw=item,
    )


def _skills(skills: Any, skills_info: Any, payload: Any, endpoint: str) -> tuple[SkillRef, ...]:
    """Skill ids (``skills.skill``) joined with their names (``skillsInfo.skillInfo``), in served order.

    Either side may be one item, a list or null; a skill named only in ``skillsInfo`` still counts.
    """
    names: dict[str, str | None] = {}
    for entry in _entries(skills_info, "skillInfo"):
        skill_id = _id_text(attr(entry, "id"))
        if skill_id is None:
            raise _error("a skillInfo entry has no id", payload, endpoint)
        names.setdefault(skill_id, _text(attr(entry, "name")))
    ordered: dict[str, None] = {}
    for entry in _entries(skills, "skill"):
        skill_id = _id_text(attr(entry, "id")) if type(entry) is dict else _id_text(entry)
        if skill_id is None:
            raise _error("a skill entry has no id", payload, endpoint)
        ordered[skill_id] = None
    for skill_id in names:
        ordered.setdefault(skill_id, None)
    return tuple(SkillRef(skill_id=skill_id, skill_name=names.get(skill_id)) for skill_id in ordered)


def _entries(container: Any, key: str) -> list[Any]:
    """``{key: item-or-list}``, or the item/list directly; null and ``""`` mean none."""
    if type(container) is dict:
        return as_list(container.get(key))
    if container is None or container == "":
        return []
    return as_list(container)


def parse_available_slots(payload: Any, *, endpoint: str = "chat/availableSlots") -> int:
    """How many more chats can be taken (``-1``: unlimited); a number or a numeric string."""
    if type(payload) is not dict or "availableSlots" not in payload:
        raise _error("expected an object with 'availableSlots'", payload, endpoint)
    slots = _count(payload["availableSlots"])
    if slots is None:
        raise _error("'availableSlots' is not a number", payload, endpoint)
    return slots


# --- chats ---


def parse_chat_sessions(payload: Any, *, endpoint: str = "chatSessions") -> list[ChatSessionRef]:
    """The chats of the logged-in agent; links here are spelled without ``@`` (both accepted)."""
    sessions = _top(payload, "chatSessions", endpoint, none_ok=True)
    if sessions is None:
        return []
    return [_chat_session(item, payload, endpoint) for item in as_list(sessions.get("chatSession"))]


def _chat_session(item: Any, payload: Any, endpoint: str) -> ChatSessionRef:
    if type(item) is not dict:
        raise _error("a chatSession is not an object", payload, endpoint)
    href = _link_to(item.get("link"), "chat-session")
    chat_id = _last_path_segment(href)
    if href is None or not chat_id:
        raise _error("a chatSession has no link to its chat", payload, endpoint)
    return ChatSessionRef(
        chat_id=chat_id,
        href=href,
        chat_session_key=_text(item.get("chatSessionKey")),
        start_time=to_utc_datetime(item.get("startTime")),
    )


def parse_chat(payload: Any, *, chat_id: str, endpoint: str | None = None) -> ChatResource:
    """``chat/{chatId}?from=N``: the new events, the chat's info and the ``from`` of the next poll."""
    endpoint = endpoint or f"chat/{chat_id}"
    chat = _top(payload, "chat", endpoint)
    links = _links(chat.get("link"))
    events_block = chat.get("events")
    events: list[ChatEvent] = []
    next_from = _from_query(links.get("next"))
    if type(events_block) is dict:
        events = _events(events_block.get("event"), chat_id, payload, endpoint)
        if next_from is None:
            next_from = _from_query(_links(events_block.get("link")).get("next"))
    elif not (events_block is None or events_block == ""):
        raise _error("'events' is not an object", payload, endpoint)
    info_block = chat.get("info")
    if type(info_block) is dict:
        info = _chat_info(info_block, visit_href=links.get("visit-id"))
    elif info_block is None or info_block == "":
        info = None
    else:
        raise _error("'info' is not an object", payload, endpoint)
    return ChatResource(chat_id=chat_id, events=tuple(events), info=info, next_from=next_from, links=links)


def parse_events(payload: Any, *, chat_id: str, endpoint: str | None = None) -> tuple[list[ChatEvent], int | None]:
    """``chat/{chatId}/events``: the events and the ``from`` of the ``next`` link (``None`` without one)."""
    endpoint = endpoint or f"chat/{chat_id}/events"
    block = _top(payload, "events", endpoint, none_ok=True)
    if block is None:
        return [], None
    return _events(block.get("event"), chat_id, payload, endpoint), _from_query(_links(block.get("link")).get("next"))


def _events(value: Any, chat_id: str, payload: Any, endpoint: str) -> list[ChatEvent]:
    """The hot loop (hundreds of thousands of events): plain dict reads, no copies, no regex."""
    if value is None or value == "":
        return []
    items = value if type(value) is list else [value]
    events: list[ChatEvent] = []
    append = events.append
    new = object.__new__
    s_chat, s_id, s_type, s_time, s_source, s_by, s_state, s_text, s_text_type, s_message, s_raw = _EVENT_SLOTS
    for item in items:
        if type(item) is not dict:
            raise _error("an event is not an object", payload, endpoint)
        get = item.get
        raw_id = get("@id")
        if raw_id is None:
            raw_id = get("id")
        if type(raw_id) is str:  # the common case ("@id": "12"), inlined: to_int's own int() first, then its rules
            try:
                event_id = int(raw_id)
            except ValueError:
                event_id = to_int(raw_id)
            else:
                if not -_INT64 <= event_id < _INT64:
                    event_id = None
        elif type(raw_id) is int and -_INT64 <= raw_id < _INT64:
            event_id = raw_id
        else:
            event_id = to_int(raw_id)
        if event_id is None:
            raise _error("an event has no numeric id", payload, endpoint)
        event_type = get("@type")
        if event_type is None:
            event_type = get("type")
        if type(event_type) is not str or not event_type:
            raise _error(f"event {event_id} has no type", payload, endpoint)
        # Text fields inline the common cases (a string, or absent) to spare a call per field per event.
        source, by, state = get("source"), get("by"), get("state")
        text, text_type, message_id = get("text"), get("textType"), get("systemMessageId")
        event = new(ChatEvent)  # the same frozen record its __init__ makes, its fields set slot by slot
        s_chat(event, chat_id)
        s_id(event, event_id)
        s_type(event, event_type)
        s_time(event, to_utc_datetime(get("time")))
        s_source(event, source if source is None or type(source) is str else _text(source))
        s_by(event, by if by is None or type(by) is str else _text(by))
        s_state(event, state if state is None or type(state) is str else _text(state))
        s_text(event, text if text is None or type(text) is str else _text(text))
        s_text_type(event, text_type if text_type is None or type(text_type) is str else _text(text_type))
        s_message(event, message_id if message_id is None or type(message_id) is str else _text(message_id))
        s_raw(event, item)
        append(event)
    return events


def parse_chat_info(payload: Any, *, endpoint: str = "chat/info") -> ChatInfo:
    """``chat/{chatId}/info``: ``{"info": {...}}`` or the inner object itself."""
    if type(payload) is not dict:
        raise _error("expected a chat info object", payload, endpoint)
    inner = payload.get("info", payload)
    if type(inner) is not dict:
        raise _error("'info' is not an object", payload, endpoint)
    return _chat_info(inner, visit_href=None)


def _chat_info(info: dict[str, Any], *, visit_href: str | None) -> ChatInfo:
    """The chat's info; its visit id, when the info does not carry one, is the chat's ``visit-id`` link."""
    visit_id = _id_text(info.get("visitId"))
    if visit_id is None:
        visit_id = _last_path_segment(visit_href) or None
    return ChatInfo(
        state=_text(info.get("state")),
        chat_session_key=_text(info.get("chatSessionKey")),
        agent_name=_text(info.get("agentName")),
        agent_id=_id_text(info.get("agentId")),
        start_time=to_utc_datetime(info.get("startTime")),
        last_update=to_utc_datetime(info.get("lastUpdate")),
        chat_timeout_s=to_int(info.get("chatTimeout")),
        visitor_id=_id_text(info.get("visitorId")),
        visitor_name=_text(info.get("visitorName")),
        rt_session_id=_id_text(info.get("rtSessionId")),
        skill_id=_id_text(info.get("skillId")),
        skill_name=_text(info.get("skillName")),
        visit_id=visit_id,
        raw=info,
    )
