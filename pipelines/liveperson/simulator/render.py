"""API-shaped payloads with the documented quirks, and their JSON/XML encodings.

The quirks are always on, as in the published examples: numbers as strings, ``@``-attributes, a single object
where a list has one item, ``null`` where it has none, and ``chatSessions`` links without the ``@``. Building
them in one place keeps the server's routing free of shape details.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from http import HTTPStatus
from typing import Any

import orjson
import xmltodict

JSON = "application/json"
XML = "application/xml"
HTML = "text/html; charset=utf-8"

STATE_CODES = {"Offline": 1, "Online": 2, "Occupied": 3, "Away": 4}
STATE_NAMES = {code: name for name, code in STATE_CODES.items()}
SESSION_TTL_MS = "28800000"


def encode(payload: Any, fmt: str) -> bytes:
    """``payload`` as JSON or XML bytes; XML maps ``@`` keys to attributes and lists to repeated elements."""
    if fmt == XML:
        root = payload if isinstance(payload, dict) and len(payload) == 1 else {"response": payload}
        return xmltodict.unparse(root, encoding="utf-8").encode("utf-8")
    return orjson.dumps(payload)


def one_or_many(items: Sequence[Any]) -> Any:
    """The API's list quirk: ``None`` for none, the item itself for one, a list otherwise."""
    if not items:
        return None
    return items[0] if len(items) == 1 else list(items)


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def state_name(code: int | str) -> str:
    return STATE_NAMES.get(int(code), f"unknown:{code}") if str(code).lstrip("-").isdigit() else str(code)


def error_payload(status: int, message: str, now: datetime, internal_code: int | None = None) -> dict[str, Any]:
    """The Login Service's error shape, used for every error the simulator answers in JSON."""
    phrase = HTTPStatus(status).name
    code = internal_code if internal_code is not None else (10 if status == 401 else status)
    return {"error": {"time": epoch_ms(now), "message": message, "internalCode": code, "responseStatus": phrase}}


def html_error_page(status: int) -> bytes:
    """What a proxy in front of the API answers: not JSON at all."""
    phrase = html.escape(HTTPStatus(status).phrase if status != 200 else "Service Temporarily Unavailable")
    return (
        f"<!DOCTYPE html>\n<html><head><title>{status} {phrase}</title></head>"
        f"<body><h1>{phrase}</h1><p>The server encountered a temporary error. Please try again later.</p>"
        f"<hr><address>nginx</address></body></html>\n"
    ).encode()


def link(href: str, rel: str) -> dict[str, str]:
    return {"@href": href, "@rel": rel}


# ---- Login Service and Domain API ---------------------------------------------------------------------------


def login_payload(login: Any, profile: Any, account_id: str, host: str, now: datetime) -> dict[str, Any]:
    """The Login Service answer; ``login`` carries the secrets (bearer, csrf, wsuk)."""
    return {
        "csrf": login.csrf,
        "wsuk": login.wsuk,
        "config": {
            "loginName": profile.user_name,
            "userId": profile.agent_id,
            "userPrivileges": [1, 2, 3],
            "serverCurrentTime": epoch_ms(now),
            "timeDiff": 0,
            "serverTimeZoneName": "UTC",
            "serverTimeGMTDiff": 0,
            "isLPA": False,
            "isAdmin": profile.privilege_group == "administrators",
            "accountTimeZoneId": "UTC",
        },
        "csdsCollectionResponse": {"baseURIs": domain_entries(account_id, host)},
        "accountData": {
            "agentGroupsData": {"items": [{"id": profile.agent_group_id, "deleted": False,
                                           "name": profile.agent_group_name}]}
        },
        "sessionTTl": SESSION_TTL_MS,
        "bearer": login.bearer,
    }


def domain_entries(account_id: str, host: str) -> list[dict[str, str]]:
    services = ("agentVep", "agentActivityDomain", "liveEngageUI", "adminArea")
    return [{"service": s, "account": account_id, "baseURI": host} for s in services]


def domain_payload(service: str, account_id: str, host: str, listing: bool) -> dict[str, Any]:
    """The Domain API: one service, or (``listing``) the newer ``baseURIs`` form with several services."""
    if listing:
        entries = domain_entries(account_id, host)
        if service not in {e["service"] for e in entries}:
            entries.append({"service": service, "account": account_id, "baseURI": host})
        return {"baseURIs": entries}
    return {"service": service, "account": account_id, "baseURI": host}


# ---- agent session resources ---------------------------------------------------------------------------------


def agent_session_created(href: str) -> dict[str, Any]:
    return {"agentSessionLocation": {"link": link(href, "location")}}


def skills_info(skills: Iterable[tuple[str, str]]) -> dict[str, Any] | None:
    items = [{"id": str(sid), "name": name} for sid, name in skills]
    return {"skillInfo": one_or_many(items)} if items else None


def skill_ids(skills: Iterable[tuple[str, str]]) -> dict[str, Any] | None:
    ids = [str(sid) for sid, _ in skills]
    return {"skill": one_or_many(ids)} if ids else None


def availability_payload(chat: str, voice: str) -> dict[str, Any]:
    return {"availability": {"chat": chat, "voice": voice}}


def info_payload(session_url: str, profile: Any, chat: str, voice: str) -> dict[str, Any]:
    return {
        "info": {
            "link": link(f"{session_url}/info", "self"),
            "agentName": profile.nickname,
            "displayName": profile.nickname,
            "loginName": profile.user_name,
            "id": str(profile.agent_id),
            "maxChats": str(profile.max_chats),
            "availability": {"chat": chat, "voice": voice},
            "skillsInfo": skills_info(profile.skills),
        }
    }


def agent_item(profile: Any, chat_code: int, voice_code: int, elapsed_ms: int, chats: int) -> dict[str, Any]:
    """One ``availableAgents`` agent, as in the published example."""
    return {
        "@id": profile.agent_id,
        "@chatState": str(chat_code),
        "@voiceState": str(voice_code),
        "@maxChats": str(profile.max_chats),
        **_agent_static(profile),
        "elapsedTimeInState": str(int(elapsed_ms)),
        "chats": str(chats),
    }


@functools.lru_cache(maxsize=20_000)
def _agent_static(profile: Any) -> dict[str, Any]:
    """The fields that depend on the profile alone, built once: 5,000 agents are re-rendered every second."""
    return {
        "userName": profile.user_name,
        "nickname": profile.nickname,
        "email": profile.email,
        "privilegeGroup": profile.privilege_group,
        "skills": skill_ids(profile.skills),
        "skillsInfo": skills_info(profile.skills),
        "agentGroupName": profile.agent_group_name,
        "agentGroupId": str(profile.agent_group_id),
    }


def available_agents_payload(items: Sequence[dict[str, Any]], next_href: str) -> dict[str, Any]:
    agents = {"agent": one_or_many(items)} if items else None
    return {"availableAgents": {"link": link(next_href, "next"), "agents": agents}}


def available_slots_payload(slots: int) -> dict[str, Any]:
    return {"availableSlots": int(slots)}


def chat_sessions_payload(session_url: str, chats: Iterable[Any]) -> dict[str, Any]:
    """``chatSessions``: note the links without ``@`` and ``startTime`` as a number, as documented."""
    items = [
        {
            "link": {"href": f"{session_url}/chat/{c.chat_id}", "rel": "chat-session"},
            "chatSessionKey": c.chat_session_key,
            "startTime": epoch_ms(c.start_time),
        }
        for c in chats
    ]
    return {"chatSessions": {"chatSession": one_or_many(items)}}


# ---- chat resources ------------------------------------------------------------------------------------------


def event_id(event: dict[str, Any]) -> int:
    return int(event.get("@id", event.get("id", -1)))


def next_from(events: Sequence[dict[str, Any]], from_: int) -> int:
    """The cursor of the next poll: after the last event served, or unchanged when nothing is new."""
    return event_id(events[-1]) + 1 if events else from_


def info_body(chat_url: str, info: dict[str, Any]) -> dict[str, Any]:
    links = [
        link(f"{chat_url}/info", "self"),
        link(f"{chat_url}/info/visitorName", "visitor-name"),
        link(f"{chat_url}/info/visitorTyping", "visitor-typing"),
        link(f"{chat_url}/info/agentTyping", "agent-typing"),
    ]
    return {"link": links, **info}


def events_body(chat_url: str, events: Sequence[dict[str, Any]], from_: int) -> dict[str, Any]:
    links = [link(f"{chat_url}/events", "self"), link(f"{chat_url}/events?from={next_from(events, from_)}", "next")]
    return {"link": links, "event": one_or_many(events)}


def chat_payload(
    session_url: str, chat_id: str, events: Sequence[dict[str, Any]], from_: int, info: dict[str, Any]
) -> dict[str, Any]:
    """The chat resource: its links (``next`` is the polling link), the events from ``from_`` and the info."""
    chat_url = f"{session_url}/chat/{chat_id}"
    visit_id = info.get("visitId") or info.get("rtSessionId") or chat_id
    links = [
        link(chat_url, "self"),
        link(f"{chat_url}/events", "events"),
        link(f"{chat_url}/info", "info"),
        link(f"{chat_url}?from={next_from(events, from_)}", "next"),
        link(f"{chat_url}/collaborationChannels", "collaboration-channels"),
        link(f"{session_url}/visits/visit/{visit_id}", "visit-id"),
        link(f"{chat_url}/transfer", "transfer"),
        link(f"{chat_url}/transferAccount", "transfer-account"),
        link(f"{chat_url}/survey", "agent-survey"),
    ]
    return {"chat": {"link": links, "events": events_body(chat_url, events, from_), "info": info_body(chat_url, info)}}


def events_payload(session_url: str, chat_id: str, events: Sequence[dict[str, Any]], from_: int) -> dict[str, Any]:
    return {"events": events_body(f"{session_url}/chat/{chat_id}", events, from_)}


def chat_info_payload(session_url: str, chat_id: str, info: dict[str, Any]) -> dict[str, Any]:
    return {"info": info_body(f"{session_url}/chat/{chat_id}", info)}
