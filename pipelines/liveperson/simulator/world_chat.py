"""One chat's identity and events, generated lazily from (seed, day, chat index) once routing has fixed its times.

Chat ids encode where the chat lives (``H`` + seed tag + day ordinal + index, 19 digits), so any process finds a
chat's day without a lookup table. Events are built on first use, in the API's JSON shape, and then served as the
same dict objects every time.
"""

from __future__ import annotations

import bisect
import random
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

UNDOCUMENTED_TYPES = ("a2a-transfer", "cobrowse-offer")
PAGES = ("https://www.example.com/", "https://www.example.com/pricing", "https://www.example.com/cart",
         "https://www.example.com/help/orders", "https://www.example.com/account/billing?tab=invoices")
VISITOR_LINES = ("Hi, I need help with my order", "I&#39;m trying to change my plan", "It says my card was declined",
                 "my email is jane.doe@example.org", "Can you call me at +1 555 0100?", "ok", "thanks!",
                 "Where is my parcel? Order #48213", "That &amp; the invoice too please", "&lt;3 great, thank you")
AGENT_LINES = ("Hello! How can I help you today?", "Let me check that for you.", "Could you share your order number?",
               "I&#39;ve updated your account.", "Is there anything else I can help with?",
               "Thanks for waiting, I&#39;m back.", "You should receive an email shortly.", "Have a great day!")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
VISITOR_NAMES = ("visitor", "visitor", "visitor", "Jane", "Carlos M.", "guest")


@dataclass(frozen=True, slots=True)
class ChatRef:
    day: int
    index: int


def seed_tag(seed: int) -> int:
    return 10_000 + zlib.crc32(f"seed:{seed}".encode()) % 90_000


def chat_id_for(tag: int, day: int, index: int) -> str:
    return f"H{tag:05d}{day:06d}{index:08d}"


def parse_chat_id(tag: int, chat_id: str) -> ChatRef | None:
    """The chat's day and index, or None when the id is not one this world issued."""
    if len(chat_id) != 20 or chat_id[0] != "H" or not chat_id[1:].isdigit() or int(chat_id[1:6]) != tag:
        return None
    return ChatRef(day=int(chat_id[6:12]), index=int(chat_id[12:]))


def chat_session_key(chat_id: str) -> str:
    return str(4_000_000_000 + zlib.crc32(f"key:{chat_id}".encode()) % 1_000_000_000)


def rt_session_id(day: int, index: int) -> str:
    """Like LivePerson's (2**32 plus a counter): unique within the account, as the spec says it only needs to be."""
    return str(4_294_967_296 + (day % 10_000) * 1_000_000 + index)


def format_time(epoch_ms: int, with_ms: bool) -> str:
    """ISO-8601 with offset, with or without milliseconds (the published examples show both)."""
    seconds, ms = divmod(epoch_ms, 1000)
    return f"{_second(seconds)}.{ms:03d}+00:00" if with_ms else f"{_second(seconds)}+00:00"


@lru_cache(maxsize=8192)
def _second(epoch_s: int) -> str:
    """The date and time part, cached: a chat's events cluster in a few minutes, and formatting is the costly bit."""
    return (EPOCH + timedelta(seconds=epoch_s)).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True)
class ChatFacts:
    """What routing decided for one chat (epoch milliseconds), and who took it."""

    chat_id: str
    day: int
    index: int
    arrival: int
    assigned: int | None
    end: int
    lines: int
    agent_id: str | None
    agent_name: str | None
    skill: tuple[str, str] | None


class ChatEvents:
    """A chat's whole event list (ground truth), its event times, and the per-chat identity its info serves."""

    def __init__(self, seed: int, facts: ChatFacts, events_per_chat: int | None) -> None:
        self.facts = facts
        rng = random.Random(f"chat:{seed}:{facts.day}:{facts.index}")
        self.with_ms = rng.random() < 0.7
        self.visitor_id = f"{rng.getrandbits(64):016x}"
        self.visit_id = f"{rng.getrandbits(48):012X}"
        self.visitor_name = rng.choice(VISITOR_NAMES)
        self.events: list[dict[str, Any]] = []
        self.times: list[int] = []
        self.speakers: list[str | None] = []
        self._build(rng, events_per_chat)

    def _add(self, at: int, kind: str, speaker: str | None = None, **fields: Any) -> None:
        event = {"@id": str(len(self.events)), "@type": kind, "time": format_time(at, self.with_ms)}
        event.update(fields)
        self.events.append(event)
        self.times.append(at)
        self.speakers.append(speaker)

    def _build(self, rng: random.Random, events_per_chat: int | None) -> None:
        f = self.facts
        self._add(f.arrival, "state", state="waiting")
        if f.assigned is None:
            if rng.random() < 0.5:
                self._add(rng.randint(f.arrival, f.end), "url", url=rng.choice(PAGES))
            self._add(f.end, "state", state="ended")
            return
        if rng.random() < 0.5:
            self._add(rng.randint(f.arrival, f.assigned - 1), "url", url=rng.choice(PAGES))
        self._add(f.assigned, "state", state="chatting")
        system_id: int | str = 4 if rng.random() < 0.5 else "4"
        self._add(min(f.assigned + rng.randint(200, 1500), f.end), "line", textType="plain",
                  text=f"You are now chatting with {f.agent_name}", by="info", source="system",
                  systemMessageId=system_id)
        fixed = len(self.events) + 1  # + the closing state event
        count = max(events_per_chat - fixed, 0) if events_per_chat is not None else f.lines
        lo, hi = self.times[-1], f.end
        times = sorted(rng.randint(lo, hi) for _ in range(count))
        by_name = rng.random() < 0.3
        extra = {"subType": "REGULAR"} if rng.random() < 0.4 else {}
        odd = {rng.randrange(count): rng.choice(UNDOCUMENTED_TYPES)} if count and rng.random() < 0.3 else {}
        speaker = "agent" if rng.random() < 0.6 else "visitor"  # the agent usually greets first
        for k, at in enumerate(times):
            if k in odd:
                self._add(at, odd[k], by=f.agent_name if odd[k] == "a2a-transfer" else "visitor")
            elif k and rng.random() < 0.03:
                self._add(at, "url", url=rng.choice(PAGES))
            elif speaker == "visitor":
                self._add(at, "line", "visitor", textType="plain", text=rng.choice(VISITOR_LINES), by="visitor",
                          source="visitor", **extra)
            else:
                text = AGENT_LINES[0] if k == 0 else rng.choice(AGENT_LINES)
                self._add(at, "line", "agent", textType="html" if rng.random() < 0.1 else "plain", text=text,
                          by=f.agent_name if by_name else "agent", source="agent", **extra)
            if rng.random() < 0.7:  # mostly turn-taking, sometimes two lines in a row
                speaker = "agent" if speaker == "visitor" else "visitor"
        self._add(f.end, "state", state="ended")

    def visible(self, epoch_ms: int) -> int:
        """How many events exist at ``epoch_ms``."""
        return bisect.bisect_right(self.times, epoch_ms)

    def info_version(self, epoch_ms: int) -> tuple[int, str, bool, str | None]:
        """Everything the info at ``epoch_ms`` depends on: (events so far, state, assigned, who types next).

        Two moments with the same version have the same info, so a server can cache the encoded info (and the
        responses that carry it) by version without building the info first.
        """
        f = self.facts
        seen = bisect.bisect_right(self.times, epoch_ms)
        assigned = f.assigned is not None and epoch_ms >= f.assigned
        state = "ended" if epoch_ms >= f.end else "chatting" if assigned else "waiting"
        upcoming = None
        if state == "chatting" and seen < len(self.times) and self.times[seen] - epoch_ms < 5_000:
            upcoming = self.speakers[seen]
        return seen, state, assigned, upcoming

    def info(self, epoch_ms: int, timeout_s: int) -> dict[str, Any]:
        return self.info_at(self.info_version(epoch_ms), timeout_s)

    def info_at(self, version: tuple[int, str, bool, str | None], timeout_s: int) -> dict[str, Any]:
        """The info of a version (``info_version``), in the API's JSON shape without links."""
        f = self.facts
        seen, state, assigned, upcoming = version
        info: dict[str, Any] = {
            "state": state,
            "chatSessionKey": chat_session_key(f.chat_id),
            "agentName": f.agent_name if assigned else "",
            "agentId": f.agent_id if assigned else "",
            "startTime": format_time(f.arrival, self.with_ms),
            "lastUpdate": self.events[seen - 1]["time"] if seen else format_time(f.arrival, self.with_ms),
            "chatTimeout": str(timeout_s),
            "visitorId": self.visitor_id,
            "visitorName": self.visitor_name,
            "agentTyping": "typing" if upcoming == "agent" and state == "chatting" else "not-typing",
            "visitorTyping": "typing" if upcoming == "visitor" and state == "chatting" else "not-typing",
            "rtSessionId": rt_session_id(f.day, f.index),
            "visitId": self.visit_id,
        }
        if f.skill is not None:
            info["skillId"], info["skillName"] = f.skill
        return info
