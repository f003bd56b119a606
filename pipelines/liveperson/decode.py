"""Response bytes -> decoded payload (JSON or XML), or a ``PayloadError`` that dead-letters the body.

The Agent API serves the same resources as JSON or XML, and proxies in front of it answer HTML error pages with
any status (even 200). Everything unreadable — HTML, truncated bodies, XML with a DOCTYPE (entity bombs,
external entities), oversized streams — becomes a ``PayloadError`` carrying the raw bytes, never a bare decode
error, so that a run can store the body and go on.

XML is decoded with ``xmltodict`` into the JSON's own structure: attributes keep the API's ``@`` spelling, numbers
stay strings, one child is a dict and several are a list (the same single-vs-list quirk the JSON has, which
``parse.py`` handles).
"""

from __future__ import annotations

from typing import Any
from xml.parsers import expat

import orjson
import requests
import xmltodict
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from pipelines.liveperson.errors import PayloadError, ResponseTooLarge

DEFAULT_MAX_RESPONSE_BYTES = 50 * 1024 * 1024
# What a refused oversized body keeps for the dead-letter table: enough to see what it was.
TOO_LARGE_HEAD_BYTES = 4096
_CHUNK_BYTES = 64 * 1024
_SNIFF_BYTES = 1024
_HTML_TAGS = (b"<!doctype html", b"<html", b"<head", b"<body")
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"


def decode_body(body: bytes, content_type: str | None, *, endpoint: str, status: int | None) -> Any:
    """Decode a response body as JSON or XML; raise ``PayloadError`` for anything that is neither.

    The body decides before the label does: one opening with ``<`` is XML (or an HTML page), and one labelled
    XML that opens like JSON is read as JSON, because proxies and mislabelled responses are both seen.
    """
    head = body.lstrip(_WHITESPACE)
    if head.startswith(_BOM):
        head = head[len(_BOM) :].lstrip(_WHITESPACE)
    if not head:
        raise PayloadError("empty body instead of JSON", endpoint=endpoint, status=status, body=body)
    media = (content_type or "").lower()
    if _looks_like_html(head) or ("html" in media and head.startswith(b"<")):
        raise PayloadError("HTML page instead of JSON", endpoint=endpoint, status=status, body=body)
    if head.startswith(b"<") or ("xml" in media and not head.startswith((b"{", b"["))):
        return _decode_xml(head, endpoint=endpoint, status=status, body=body)
    try:
        return orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"truncated or malformed JSON: {exc}", endpoint=endpoint, status=status, body=body) from exc


def read_limited(response: requests.Response, limit_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, *, endpoint: str) -> bytes:
    """Read a ``stream=True`` response, refusing it as soon as it passes ``limit_bytes``.

    The rest of an oversized body is never downloaded: a runaway or hostile response must not exhaust memory.
    The limit applies to the decoded bytes (after gzip), so a compression bomb is refused too. A connection
    that breaks mid-body raises ``requests``' own error: that is the transport's to retry, not a payload.
    """
    declared = _content_length(response)
    if declared is not None and declared > limit_bytes:
        head = next(response.iter_content(TOO_LARGE_HEAD_BYTES), b"")
        response.close()
        raise ResponseTooLarge(
            f"Content-Length {declared} exceeds the limit of {limit_bytes} bytes",
            endpoint=endpoint,
            status=response.status_code,
            body=head[:TOO_LARGE_HEAD_BYTES],
        )
    body = bytearray()  # one growing buffer: refusing an oversized body never copies all of it to keep its head
    for chunk in response.iter_content(_CHUNK_BYTES):
        body += chunk
        if len(body) > limit_bytes:
            response.close()
            raise ResponseTooLarge(
                f"body exceeds the limit of {limit_bytes} bytes",
                endpoint=endpoint,
                status=response.status_code,
                body=bytes(body[:TOO_LARGE_HEAD_BYTES]),
            )
    return bytes(body)


def _content_length(response: requests.Response) -> int | None:
    try:
        return int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None


def _looks_like_html(head: bytes) -> bool:
    """An HTML page (a proxy's error page): a doctype or html tag near the start of a body opening with ``<``."""
    if not head.startswith(b"<"):
        return False
    sniff = head[:_SNIFF_BYTES].lower()
    return any(tag in sniff for tag in _HTML_TAGS)


def _decode_xml(text: bytes, *, endpoint: str, status: int | None, body: bytes) -> Any:
    try:
        return xmltodict.parse(text, expat=_DefusedExpat, disable_entities=True)
    except DefusedXmlException as exc:
        raise PayloadError(f"XML refused: {exc}", endpoint=endpoint, status=status, body=body) from exc
    except (expat.ExpatError, LookupError, ValueError) as exc:  # LookupError: an unknown declared encoding
        raise PayloadError(f"truncated or malformed XML: {exc}", endpoint=endpoint, status=status, body=body) from exc


class _DefusedExpat:
    """An ``expat`` stand-in for ``xmltodict`` whose parsers refuse any DOCTYPE or entity (defusedxml's rules).

    The API never sends a DTD, so refusing the DOCTYPE outright removes entity expansion (billion laughs) and
    external entities (file or network reads) before either can start.
    """

    @staticmethod
    def ParserCreate(encoding: str | None = None, namespace_separator: str | None = None) -> Any:
        parser = expat.ParserCreate(encoding, namespace_separator)
        parser.StartDoctypeDeclHandler = _forbid_doctype
        parser.EntityDeclHandler = _forbid_entity
        parser.UnparsedEntityDeclHandler = _forbid_unparsed_entity
        parser.ExternalEntityRefHandler = _forbid_external_reference
        return parser


def _forbid_doctype(name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool) -> None:
    raise DTDForbidden(name, sysid, pubid)


def _forbid_entity(
    name: str,
    is_parameter_entity: bool,
    value: str | None,
    base: str | None,
    sysid: str | None,
    pubid: str | None,
    notation_name: str | None,
) -> None:
    raise EntitiesForbidden(name, value, base, sysid, pubid, notation_name)


def _forbid_unparsed_entity(
    name: str, base: str | None, sysid: str | None, pubid: str | None, notation_name: str | None
) -> None:
    raise EntitiesForbidden(name, None, base, sysid, pubid, notation_name)


def _forbid_external_reference(context: str, base: str | None, sysid: str | None, pubid: str | None) -> None:
    raise ExternalReferenceForbidden(context, base, sysid, pubid)
