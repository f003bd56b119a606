"""One dead letter -> the records its endpoint's parser reads -> the warehouse rows a live run would have stored.

Why a module of its own: replay must read a stored body exactly as the live run would have (``decode_body`` with no
content type, so the body decides JSON vs XML; then the endpoint's parser from ``parse.py``) and land the records
through the same ``normalize`` functions and ``Warehouse.upsert``, stamped with the original run. What each
endpoint can land, and why some cannot:

- ``availableAgents``: ``agent_state_snapshot`` of the original snapshot; agents and skills not yet known are added
  to the dimensions (a replayed old payload never overwrites newer dimension values); ``agent_skill`` intervals are
  left alone (they are built from the sequence of live snapshots; an old one out of order would split them). The
  persisted intervals (``reporting.interval_store``) take the new snapshots in the same transaction: the agents
  they land behind are folded again from their previous snapshot on.
- ``chat/availableSlots``: ``chat_slots_snapshot``.
- ``info``: the login's ``session_availability_snapshot`` row, from the availability the info carries (the row the
  failed step could not write); nothing when the row exists.
- ``chat/{chatId}``: the events (keys make them idempotent) and the chat's cursor, moved forward only, with the
  chat's info columns when it moves (then this poll is newer than any stored one), in one transaction.
- ``chatSessions``: lands when every chat it lists is registered already (the next live run registers listed chats);
  a chat listed only there stays pending: the payload does not say which login's agent monitors it.
- ``availability`` (names no agent), error answers (HTTP >= 400), empty bodies and other endpoints: not replayable.

Personal text: with ``LP_STORE_CHAT_TEXT`` off, a chat dead letter holds each text value replaced by its length.
Such a value (a JSON number; in XML a string of digits) is taken as the length it stands for: ``text`` null,
``text_length`` that length, ``raw_json`` with the length where the text was, as a live run stores it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import orjson
import pyarrow as pa
import sqlalchemy as sa

from pipelines import normalize
from pipelines.liveperson.decode import decode_body
from pipelines.liveperson.parse import (
    parse_available_agents,
    parse_available_slots,
    parse_chat,
    parse_chat_sessions,
    parse_session_info,
)
from pipelines.liveperson.records import AgentSessionInfo, AvailableAgentsPage, ChatResource, ChatSessionRef
from pipelines.reporting import interval_store
from pipelines.storage import schema
from pipelines.storage.warehouse import Warehouse

_CHAT_ENDPOINT = re.compile(r"chat/(?P<chat_id>[^/]+)")
_NOT_A_CHAT = frozenset({"availableSlots"})


class NotReplayable(Exception):
    """A dead letter whose content cannot land; it stays unreplayed. The message up to its first colon is the
    reason a summary counts it under."""


@dataclass(frozen=True)
class DeadLetter:
    """One ``ingest_error`` row awaiting replay."""

    error_id: str
    snapshot_id: str
    endpoint: str
    http_status: int | None
    payload: str
    at: datetime

    @property
    def from_xml(self) -> bool:
        """The stored body is XML (then a redacted text is a string of digits rather than a JSON number)."""
        return self.payload.lstrip().startswith("<")


@dataclass(frozen=True)
class RunStamp:
    """The original run a replayed row belongs to: its ``snapshot_id`` and ``snapshot_at``."""

    snapshot_id: str
    snapshot_at: datetime

    @property
    def day(self) -> date:
        """The UTC day of the run's fact files (that of its ``snapshot_at``, as a live run files them)."""
        return self.snapshot_at.astimezone(UTC).date()


@dataclass
class Landed:
    """What one dead letter stored: new rows per table (counted in SQL), and the tables its Parquet side touches."""

    rows: dict[str, int] = field(default_factory=dict)
    fact_tables: set[str] = field(default_factory=set)
    dimension_tables: set[str] = field(default_factory=set)
    cursor_advanced: bool = False


class Landing(Protocol):
    """A parsed dead letter, ready to be stored in the caller's transaction."""

    def land(self, conn: sa.Connection, warehouse: Warehouse, stamp: RunStamp, letter: DeadLetter) -> Landed: ...


def interpret(letter: DeadLetter, *, store_text: bool) -> Landing:
    """Decode and parse a dead letter as its endpoint's live read would; raises ``PayloadError`` (still unreadable)
    or ``NotReplayable``."""
    endpoint = letter.endpoint
    chat = _CHAT_ENDPOINT.fullmatch(endpoint)
    if chat and chat["chat_id"] in _NOT_A_CHAT:
        chat = None
    known = endpoint in ("availableAgents", "chat/availableSlots", "info", "chatSessions") or chat is not None
    if endpoint == "availability":
        raise NotReplayable("availability names no agent")
    if not known:
        raise NotReplayable(f"endpoint {endpoint} carries nothing to land")
    if letter.http_status is not None and letter.http_status >= 400:
        raise NotReplayable(f"error answer (HTTP {letter.http_status})")
    if not letter.payload.strip():
        raise NotReplayable("empty body")
    payload = decode_body(letter.payload.encode("utf-8"), None, endpoint=endpoint, status=letter.http_status)
    if endpoint == "availableAgents":
        return AgentsLanding(parse_available_agents(payload, endpoint=endpoint))
    if endpoint == "chat/availableSlots":
        return SlotsLanding(parse_available_slots(payload, endpoint=endpoint))
    if endpoint == "info":
        return SessionAvailabilityLanding(parse_session_info(payload, endpoint=endpoint))
    if endpoint == "chatSessions":
        return KnownChatsLanding(parse_chat_sessions(payload, endpoint=endpoint))
    assert chat is not None
    resource = parse_chat(payload, chat_id=chat["chat_id"], endpoint=endpoint)
    return ChatLanding(resource, store_text=store_text, from_xml=letter.from_xml)


def _count(conn: sa.Connection, table: str, **where: Any) -> int:
    target = schema.TABLES[table]
    query = sa.select(sa.func.count()).select_from(target)
    for column, value in where.items():
        query = query.where(target.c[column] == value)
    return int(conn.execute(query).scalar_one())


def _insert_new(conn: sa.Connection, warehouse: Warehouse, table: str, rows: pa.Table, **scope: Any) -> int:
    """Insert rows whose key is not stored yet (on conflict do nothing); returns how many were new."""
    before = _count(conn, table, **scope)
    warehouse.upsert(conn, table, rows, update=False)
    return _count(conn, table, **scope) - before


@dataclass(frozen=True)
class AgentsLanding:
    page: AvailableAgentsPage

    def land(self, conn: sa.Connection, warehouse: Warehouse, stamp: RunStamp, letter: DeadLetter) -> Landed:
        snapshot_rows = normalize.agent_state_table(stamp.snapshot_id, stamp.snapshot_at, self.page.agents)
        monitored = _monitored_agents(conn, stamp.snapshot_id)
        agent_rows = normalize.agent_dimension_table(self.page.agents, stamp.snapshot_at, monitored)
        skill_rows = normalize.skill_table(self.page.agents, stamp.snapshot_at)
        rows = {
            "agent_state_snapshot": _insert_new(
                conn, warehouse, "agent_state_snapshot", snapshot_rows, snapshot_id=stamp.snapshot_id
            ),
            "agent": _insert_new(conn, warehouse, "agent", agent_rows),
            "skill": _insert_new(conn, warehouse, "skill", skill_rows),
        }
        if rows["agent_state_snapshot"]:  # the persisted intervals take them in this transaction (behind an
            interval_store.apply_run(conn, stamp.snapshot_id)  # agent's later runs: refolded from the one before)
        return Landed(rows, {"agent_state_snapshot"}, {name for name in ("agent", "skill") if rows[name]})


def _monitored_agents(conn: sa.Connection, snapshot_id: str) -> set[str]:
    """Our logins' agents: those marked monitored, and those with a session row in the replayed snapshot."""
    agent, sessions = schema.TABLES["agent"], schema.TABLES["session_availability_snapshot"]
    marked = conn.execute(sa.select(agent.c.agent_id).where(agent.c.monitored.is_(True))).scalars()
    listed = conn.execute(sa.select(sessions.c.agent_id).where(sessions.c.snapshot_id == snapshot_id)).scalars()
    return {*marked, *listed}


@dataclass(frozen=True)
class SlotsLanding:
    slots: int

    def land(self, conn: sa.Connection, warehouse: Warehouse, stamp: RunStamp, letter: DeadLetter) -> Landed:
        table = normalize.chat_slots_table(stamp.snapshot_id, stamp.snapshot_at, self.slots)
        rows = _insert_new(conn, warehouse, "chat_slots_snapshot", table, snapshot_id=stamp.snapshot_id)
        return Landed({"chat_slots_snapshot": rows}, {"chat_slots_snapshot"})


@dataclass(frozen=True)
class SessionAvailabilityLanding:
    info: AgentSessionInfo

    def land(self, conn: sa.Connection, warehouse: Warehouse, stamp: RunStamp, letter: DeadLetter) -> Landed:
        availability = self.info.availability
        if availability.chat is None and availability.voice is None:
            return Landed()  # an info without availability carries no fact: nothing was lost
        row = {"agent_id": self.info.agent_id, "chat": availability.chat, "voice": availability.voice}
        table = normalize.session_availability_table(stamp.snapshot_id, stamp.snapshot_at, [row])
        rows = _insert_new(conn, warehouse, "session_availability_snapshot", table, snapshot_id=stamp.snapshot_id)
        return Landed({"session_availability_snapshot": rows}, {"session_availability_snapshot"})


@dataclass(frozen=True)
class KnownChatsLanding:
    refs: list[ChatSessionRef]

    def land(self, conn: sa.Connection, warehouse: Warehouse, stamp: RunStamp, letter: DeadLetter) -> Landed:
        table = schema.TABLES["chat_session"]
        listed = {ref.chat_id for ref in self.refs}
        known = set(conn.execute(sa.select(table.c.chat_id).where(table.c.chat_id.in_(sorted(listed)))).scalars())
        if listed - known:
            raise NotReplayable(
                f"chats listed only here: {len(listed - known)}; the payload does not say which login's agent "
                "monitors them"
            )
        return Landed()


@dataclass(frozen=True)
class ChatLanding:
    resource: ChatResource
    store_text: bool
    from_xml: bool

    def land(self, conn: sa.Connection, warehouse: Warehouse, stamp: RunStamp, letter: DeadLetter) -> Landed:
        """The events under the original snapshot, then the cursor forward only, in the caller's transaction."""
        chat_id = self.resource.chat_id
        events = self.event_table(stamp.snapshot_id, letter.at)
        landed = Landed(fact_tables={"chat_event"})
        landed.rows["chat_event"] = _insert_new(conn, warehouse, "chat_event", events, chat_id=chat_id)
        ids = [event.event_id for event in self.resource.events]
        if not ids:
            return landed
        last_event_id = max(ids)
        sessions = schema.TABLES["chat_session"]
        values = {"last_event_id": last_event_id, "next_from": last_event_id + 1, **self.session_columns()}
        moved = conn.execute(
            sa.update(sessions)
            .where(sessions.c.chat_id == chat_id, sa.func.coalesce(sessions.c.next_from, 0) < last_event_id + 1)
            .values(**values)
        ).rowcount
        if moved:
            landed.cursor_advanced = True
            landed.dimension_tables.add("chat_session")
        return landed

    def event_table(self, snapshot_id: str, ingested_at: datetime) -> pa.Table:
        """``normalize.chat_event_table``, then each stored length put back where the text was."""
        table = normalize.chat_event_table(snapshot_id, ingested_at, self.resource.events, self.store_text)
        patches = {
            event.event_id: (lengths, event.raw)
            for event in self.resource.events
            if (lengths := stored_lengths(event.raw, self.from_xml and not self.store_text))
        }
        if not patches:
            return table
        text = table.column("text").to_pylist()
        text_length = table.column("text_length").to_pylist()
        raw_json = table.column("raw_json").to_pylist()
        for index, event_id in enumerate(table.column("event_id").to_pylist()):
            if event_id not in patches:
                continue
            lengths, raw = patches[event_id]
            if "text" in lengths:
                text[index], text_length[index] = None, lengths["text"]
            raw_json[index] = restored_json(raw, lengths, self.store_text)
        arrow_schema = schema.ARROW_SCHEMAS["chat_event"]
        for name, values in (("text", text), ("text_length", text_length), ("raw_json", raw_json)):
            field_ = arrow_schema.field(name)
            table = table.set_column(table.schema.get_field_index(name), field_, pa.array(values, field_.type))
        return table

    def session_columns(self) -> dict[str, Any]:
        """The ``chat_session`` columns this poll tells, as a live poll's; the info's text keeps its stored lengths."""
        return normalize.chat_session_columns(self.resource, self.info_json)

    def info_json(self, raw: Mapping[str, Any]) -> str | None:
        lengths = stored_lengths(raw, self.from_xml and not self.store_text)
        if lengths:
            return restored_json(raw, lengths, self.store_text)
        return normalize.chat_info_json(raw, self.store_text)


def stored_lengths(raw: Mapping[str, Any], digits_are_lengths: bool) -> dict[str, int]:
    """The personal values of a dead-lettered item that redaction already replaced by their lengths.

    A served text is always a string, so a JSON number there is a length; in XML every value is a string, so a
    string of digits counts as a length only when ``digits_are_lengths`` (the letter was written redacted).
    """
    lengths: dict[str, int] = {}
    for key in normalize.PERSONAL_KEYS:
        value = raw.get(key)
        if type(value) is int:
            lengths[key] = value
        elif digits_are_lengths and type(value) is str and value.isdecimal():
            lengths[key] = int(value)
    return lengths


def restored_json(raw: Mapping[str, Any], lengths: Mapping[str, int], store_text: bool) -> str:
    """The item as a live run stores it: each stored length where its text was, every other value as usual."""
    rest = normalize.redact_payload_text({key: value for key, value in raw.items() if key not in lengths}, store_text)
    return orjson.dumps({key: lengths[key] if key in lengths else rest[key] for key in raw}).decode()
