"""Records -> Arrow tables in the data contract's columns, cast to the warehouse's Arrow schemas.

Tables are built column-wise (one Python list per column, then ``pa.array``), because event tables reach hundreds
of thousands of rows. Personal data is removed here and nowhere else: unless ``store_text`` (the setting
``LP_STORE_CHAT_TEXT``), chat line text and visitor names never leave this module; their lengths are kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from pipelines.liveperson.records import AgentRecord, ChatEvent, ChatResource
from pipelines.storage.schema import ARROW_SCHEMAS, TIMESTAMP_TYPE

# Payload keys whose values are personal text: a chat line's text and the visitor's name.
PERSONAL_KEYS = frozenset({"text", "visitorName"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The instants a timestamp column holds (Python's datetime range): a start outside them is no start.
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
# Dead letters are unreadable bodies (truncated JSON, XML, HTML): personal values are found textually there.
_JSON_PERSONAL = re.compile(r'"(text|visitorName)"(\s*:\s*)"((?:[^"\\]|\\.)*)("|\\?\Z)', re.DOTALL)
_XML_PERSONAL = re.compile(r"<(text|visitorName)(\s[^>]*)?>(.*?)(</\1\s*>|\Z)", re.DOTALL)
_XML_REFERENCE = re.compile(r"&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);")


def _build(table: str, columns: Mapping[str, Sequence[Any] | pa.Array]) -> pa.Table:
    """Exactly the schema's columns, in its order and types; a missing or extra column is a bug, not data."""
    schema = ARROW_SCHEMAS[table]
    if set(columns) != set(schema.names):
        raise ValueError(f"{table}: columns {sorted(columns)} differ from the schema {schema.names}")
    arrays = [_array(columns[field.name], field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _array(values: Sequence[Any] | pa.Array, type_: pa.DataType) -> pa.Array:
    return values.cast(type_) if isinstance(values, pa.Array) else pa.array(values, type=type_)


def _utc(at: datetime) -> datetime:
    """The clock gives aware UTC; a naive time here would be ambiguous, so it is refused."""
    if at.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware: {at!r}")
    return at.astimezone(UTC)


def _times(values: Iterable[datetime | None]) -> pa.Array:
    """Aware datetimes as a UTC timestamp array, via integer microseconds: pyarrow converts aware datetime
    objects one zone lookup at a time, about a hundred times slower. A naive value raises TypeError."""
    micros = [None if value is None else (value - _EPOCH) // _MICROSECOND for value in values]
    return pa.array(micros, type=pa.int64()).cast(TIMESTAMP_TYPE)


def _same_time(at: datetime, n: int) -> pa.Array:
    """One instant repeated for every row (snapshot_at, seen_at, ingested_at)."""
    return pa.repeat(pa.scalar(_utc(at), type=TIMESTAMP_TYPE), n)


def _unique_agents(agents: Iterable[AgentRecord]) -> list[AgentRecord]:
    """One record per agent id (the last wins), in first-seen order: a key appears once per snapshot."""
    return list({agent.agent_id: agent for agent in agents}.values())


def agent_state_table(snapshot_id: str, snapshot_at: datetime, agents: Iterable[AgentRecord]) -> pa.Table:
    """``agent_state_snapshot``; state_started_at = snapshot_at - elapsed (0 stays 0: the views interpret it)."""
    agents = _unique_agents(agents)
    n = len(agents)
    at_us = (_utc(snapshot_at) - _EPOCH) // _MICROSECOND
    elapsed = [agent.elapsed_in_state_ms for agent in agents]
    starts = [None if ms is None else at_us - ms * 1000 for ms in elapsed]
    started = pa.array([us if us is None or _MIN_US <= us <= _MAX_US else None for us in starts], pa.int64())
    return _build(
        "agent_state_snapshot",
        {
            "snapshot_id": [snapshot_id] * n,
            "snapshot_at": _same_time(snapshot_at, n),
            "agent_id": [agent.agent_id for agent in agents],
            "chat_state_code": [agent.chat_state_code for agent in agents],
            "chat_state": [agent.chat_state for agent in agents],
            "voice_state_code": [agent.voice_state_code for agent in agents],
            "voice_state": [agent.voice_state for agent in agents],
            "max_chats": [agent.max_chats for agent in agents],
            "chats": [agent.chats for agent in agents],
            "elapsed_in_state_ms": elapsed,
            "state_started_at": started.cast(TIMESTAMP_TYPE),
            "agent_group_id": [agent.agent_group_id for agent in agents],
        },
    )


def agent_dimension_table(agents: Iterable[AgentRecord], seen_at: datetime, monitored_ids: Iterable[str]) -> pa.Table:
    """``agent`` rows as seen now; the upsert keeps each agent's stored ``first_seen_at``."""
    agents = _unique_agents(agents)
    monitored = set(monitored_ids)
    seen = _same_time(seen_at, len(agents))
    return _build(
        "agent",
        {
            "agent_id": [agent.agent_id for agent in agents],
            "user_name": [agent.user_name for agent in agents],
            "nickname": [agent.nickname for agent in agents],
            "email": [agent.email for agent in agents],
            "privilege_group": [agent.privilege_group for agent in agents],
            "agent_group_id": [agent.agent_group_id for agent in agents],
            "agent_group_name": [agent.agent_group_name for agent in agents],
            "monitored": [agent.agent_id in monitored for agent in agents],
            "first_seen_at": seen,
            "last_seen_at": seen,
        },
    )


def skill_table(agents: Iterable[AgentRecord], seen_at: datetime) -> pa.Table:
    """``skill`` rows: every skill any agent lists, by id, with the first name given for it."""
    names: dict[str, str | None] = {}
    for agent in agents:
        for skill in agent.skills:
            if names.get(skill.skill_id) is None:
                names[skill.skill_id] = skill.skill_name
    ids = sorted(names)
    seen = _same_time(seen_at, len(ids))
    return _build(
        "skill",
        {"skill_id": ids, "skill_name": [names[i] for i in ids], "first_seen_at": seen, "last_seen_at": seen},
    )


def agent_skill_pairs(agents: Iterable[AgentRecord]) -> set[tuple[str, str]]:
    """(agent_id, skill_id) memberships seen now; the ingest opens and closes ``agent_skill`` intervals."""
    return {(agent.agent_id, skill.skill_id) for agent in agents for skill in agent.skills}


def session_availability_table(
    snapshot_id: str, snapshot_at: datetime, rows: Iterable[Mapping[str, Any]]
) -> pa.Table:
    """``session_availability_snapshot`` from ``{"agent_id", "chat", "voice"}`` rows, one per monitored login."""
    unique = list({row["agent_id"]: row for row in rows}.values())
    n = len(unique)
    return _build(
        "session_availability_snapshot",
        {
            "snapshot_id": [snapshot_id] * n,
            "snapshot_at": _same_time(snapshot_at, n),
            "agent_id": [row["agent_id"] for row in unique],
            "chat": [row.get("chat") for row in unique],
            "voice": [row.get("voice") for row in unique],
        },
    )


def chat_slots_table(snapshot_id: str, snapshot_at: datetime, slots: int | None) -> pa.Table:
    """``chat_slots_snapshot``: one row per run (-1 = unlimited)."""
    return _build(
        "chat_slots_snapshot",
        {"snapshot_id": [snapshot_id], "snapshot_at": _same_time(snapshot_at, 1), "available_slots": [slots]},
    )


def chat_event_table(
    snapshot_id: str, ingested_at: datetime, events: Iterable[ChatEvent], store_text: bool
) -> pa.Table:
    """``chat_event``: text only if ``store_text``; text_length always (characters as served, still escaped).

    An event served twice (same chat and id) appears once: the key must be unique within a file too."""
    events = list({(event.chat_id, event.event_id): event for event in events}.values())
    n = len(events)
    texts = [event.text for event in events]
    raw_json = _raw_json_array([event.raw for event in events], store_text)
    return _build(
        "chat_event",
        {
            "chat_id": [event.chat_id for event in events],
            "event_id": [event.event_id for event in events],
            "snapshot_id": [snapshot_id] * n,
            "event_type": [event.event_type for event in events],
            "event_time": _times(event.event_time for event in events),
            "source": [event.source for event in events],
            "by": [event.by for event in events],
            "state": [event.state for event in events],
            "text": texts if store_text else pa.nulls(n, pa.string()),
            "text_length": [None if text is None else len(text) for text in texts],
            "raw_json": raw_json,
            "ingested_at": _same_time(ingested_at, n),
        },
    )


def chat_info_json(info_raw: Mapping[str, Any] | None, store_text: bool) -> str | None:
    """``chat_session.info_json``: the info as served, visitor name and other personal text removed unless
    ``store_text``."""
    if info_raw is None:
        return None
    return orjson.dumps(info_raw if store_text else _redact(info_raw)).decode()


def chat_session_columns(
    resource: ChatResource, info_json: Callable[[Mapping[str, Any]], str | None]
) -> dict[str, Any]:
    """The ``chat_session`` columns that a chat poll tells: its info's (absent values left as stored) and, when
    an event says the chat ended, ``end_time`` and ``state``. ``info_json`` renders the info's raw mapping (a live
    poll redacts it; a replayed dead letter restores the lengths it was stored with)."""
    info = resource.info
    columns: dict[str, Any] = {}
    if info is not None:
        columns = {
            "state": info.state,
            "chat_session_key": info.chat_session_key,
            "rt_session_id": info.rt_session_id,
            "agent_id": info.agent_id,
            "agent_name": info.agent_name,
            "skill_id": info.skill_id,
            "skill_name": info.skill_name,
            "visitor_id": info.visitor_id,
            "visit_id": info.visit_id,
            "info_json": info_json(info.raw),
            "start_time": info.start_time,
        }
        columns = {key: value for key, value in columns.items() if value is not None}
    ended = [event.event_time for event in resource.events if event.event_type == "state" and event.state == "ended"]
    if ended and ended[-1] is not None:
        columns["end_time"] = ended[-1]
        columns["state"] = "ended"
    return columns


def redact_payload_text(obj: Any, store_text: bool) -> Any:
    """A dead letter from a chat resource with each personal text value replaced by its length.

    ``obj`` is a decoded payload (dict/list, returned redacted) or a raw body (str/bytes, returned as str). A
    body that does not parse (the reason it is a dead letter) is redacted textually: JSON ``"text": "..."``
    pairs and XML ``<text>...</text>`` elements, including one cut off by truncation.
    """
    if store_text:
        return obj.decode("utf-8", errors="replace") if isinstance(obj, bytes) else obj
    if not isinstance(obj, str | bytes):
        return _redact(obj)
    body = obj.decode("utf-8", errors="replace") if isinstance(obj, bytes) else obj
    try:
        return orjson.dumps(_redact(orjson.loads(body))).decode()
    except orjson.JSONDecodeError:
        pass
    body = _JSON_PERSONAL.sub(lambda m: f'"{m[1]}"{m[2]}{_json_string_length(m[3])}', body)
    return _XML_PERSONAL.sub(lambda m: f"<{m[1]}{m[2] or ''}>{_xml_text_length(m[3])}</{m[1]}>", body)


def _xml_text_length(escaped: str) -> int:
    """Characters of an XML element's text as the decoder reads it (each entity or character reference is one)."""
    return len(_XML_REFERENCE.sub("_", escaped))


def _json_string_length(escaped: str) -> int:
    """Characters of a JSON string's value (its escaped form's length if it was cut off mid-escape)."""
    try:
        return len(orjson.loads(f'"{escaped}"'))
    except orjson.JSONDecodeError:
        return len(escaped)


_CONTAINERS = frozenset({dict, list})
_OPEN_BRACE, _OPEN_BRACKET = ord("{"), ord("[")


def _raw_json_array(raws: Sequence[dict[str, Any]], store_text: bool) -> pa.Array:
    """``raw_json`` of every event: each event's ``orjson.dumps`` (its personal values replaced by their lengths
    unless ``store_text``) as one Arrow string array.

    The hot path (flat events, the common case) serializes the whole list in ONE ``orjson.dumps`` call and cuts
    the array into its elements with numpy, instead of one call per event: the bytes of each element are exactly
    those of ``orjson.dumps(event)``. Cutting is safe only when the events' only ``{`` are their own opening
    braces and the only ``[`` is the list's (counted in the output: a brace or bracket inside a string or a
    nested value makes the counts differ); otherwise each event is serialized on its own (``_redacted_json``).
    """
    n = len(raws)
    if store_text:
        objects: Sequence[Any] = raws
    else:  # flat events: a shallow copy with each personal value replaced (nested ones fail the count below)
        objects = []
        append = objects.append
        for raw in raws:
            if "text" in raw or "visitorName" in raw:
                copy = dict(raw)
                for key in PERSONAL_KEYS:
                    if key in copy:
                        copy[key] = _length(copy[key])
                append(copy)
            else:
                append(raw)
    body = orjson.dumps(objects)
    if n == 0 or body.count(b"{") != n or body.count(b"[") != 1 or len(body) >= 2**31:
        each = [orjson.dumps(raw) if store_text else _redacted_json(raw) for raw in raws]
        # UTF-8 bytes from orjson, validated once by Arrow's cast instead of one str decode per event
        return pa.array(each, type=pa.binary()).cast(pa.string())
    # body is b"[{...},{...},...]": element i starts at the i-th "{"; drop the "[", the "," between elements and
    # the "]", then element i starts at its brace's position minus the i + 1 bytes dropped before it
    data = np.frombuffer(body, dtype=np.uint8)
    starts = np.flatnonzero(data == _OPEN_BRACE)
    keep = np.ones(len(data), dtype=bool)
    keep[0] = keep[-1] = False
    keep[starts[1:] - 1] = False
    offsets = np.empty(n + 1, dtype=np.int32)
    offsets[:n] = starts - np.arange(1, n + 1)
    offsets[n] = len(data) - n - 1
    # orjson's output is valid UTF-8 by construction: the array is assembled from its buffers without a copy of
    # each value (validated in tests)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data[keep])])


def _redacted_json(raw: dict[str, Any]) -> bytes:
    """``orjson.dumps(_redact(raw))`` for one event, without the copy when it is flat (the common case): only a
    personal key's value changes, in place in a shallow copy."""
    if not _CONTAINERS.isdisjoint(map(type, raw.values())):
        return orjson.dumps(_redact(raw))
    if "text" in raw or "visitorName" in raw:
        copy = dict(raw)
        for key in PERSONAL_KEYS:
            if key in copy:
                copy[key] = _length(copy[key])
        return orjson.dumps(copy)
    return orjson.dumps(raw)


def _redact(value: Any) -> Any:
    """A copy of a decoded payload with every personal value replaced by its length (scalars are not copied:
    this runs once per stored event)."""
    if isinstance(value, dict):
        return {
            key: _length(item) if key in PERSONAL_KEYS else _redact(item) if isinstance(item, dict | list) else item
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) if isinstance(item, dict | list) else item for item in value]
    return value


def _length(value: Any) -> Any:
    """The length that stands in for a personal value; structured values (XML attributes) are redacted whole."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return {key: _length(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_length(item) for item in value]
    return len(value) if isinstance(value, str) else len(str(value))
