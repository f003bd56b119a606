"""Decoding response bodies: JSON, XML in the JSON's shape, and every unreadable body refused as a PayloadError."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.liveperson.decode import DEFAULT_MAX_RESPONSE_BYTES, TOO_LARGE_HEAD_BYTES, decode_body, read_limited
from pipelines.liveperson.errors import PayloadError, ResponseTooLarge
from pipelines.liveperson.parse import parse_available_agents, parse_chat

PAYLOADS = Path(__file__).parent / "payloads"


def body_of(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def decode(body: bytes, content_type: str | None = "application/json", status: int | None = 200) -> Any:
    return decode_body(body, content_type, endpoint="availableAgents", status=status)


# --- JSON ---


def test_json_body_decodes_to_python_values() -> None:
    assert decode(body_of("available_slots.json")) == {"availableSlots": 1}


def test_json_body_decodes_without_a_content_type() -> None:
    assert decode(b'{"availability": {"chat": "Online"}}', None) == {"availability": {"chat": "Online"}}


def test_json_body_with_a_byte_order_mark_decodes() -> None:
    assert decode(b'\xef\xbb\xbf{"availableSlots": 1}') == {"availableSlots": 1}


def test_published_truncated_available_agents_is_a_payload_error_carrying_the_bytes() -> None:
    body = body_of("available_agents_truncated.json")

    with pytest.raises(PayloadError) as caught:
        decode(body)

    assert caught.value.body == body
    assert caught.value.endpoint == "availableAgents"
    assert caught.value.status == 200
    assert "JSON" in caught.value.reason


def test_reconstructed_available_agents_decodes() -> None:
    assert len(decode(body_of("available_agents.json"))["availableAgents"]["agents"]["agent"]) == 6


@pytest.mark.parametrize("body", [b"", b"  \r\n\t"])
def test_empty_body_where_json_was_expected_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError, match="empty body"):
        decode(body)


def test_body_that_is_not_utf8_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        decode(b'{"agentName": "\xff\xfe"}')


def test_plain_text_error_body_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        decode(b"Service Unavailable", "text/plain", status=503)


# --- HTML from proxies ---


def test_html_page_with_status_200_is_a_payload_error_carrying_the_bytes() -> None:
    body = body_of("proxy_error.html")

    with pytest.raises(PayloadError) as caught:
        decode(body, "application/json", status=200)

    assert caught.value.reason == "HTML page instead of JSON"
    assert caught.value.body == body
    assert caught.value.status == 200


@pytest.mark.parametrize("status", [200, 401, 502, None])
def test_html_page_is_refused_whatever_the_status(status: int | None) -> None:
    with pytest.raises(PayloadError, match="HTML page"):
        decode(body_of("proxy_error.html"), "text/html; charset=utf-8", status=status)


def test_html_page_without_doctype_is_refused() -> None:
    with pytest.raises(PayloadError, match="HTML page"):
        decode(b"\n<html><body><h1>Bad Gateway</h1></body></html>", None)


def test_html_fragment_served_as_html_is_refused() -> None:
    with pytest.raises(PayloadError, match="HTML page"):
        decode(b"<h1>502 Bad Gateway</h1>", "text/html")


def test_json_mentioning_html_in_a_chat_line_is_still_json() -> None:
    body = b'{"events": {"event": {"@id": "1", "@type": "line", "text": "<html> is fine here"}}}'

    assert decode(body)["events"]["event"]["text"] == "<html> is fine here"


# --- XML ---


def test_xml_body_decodes_to_the_json_structure_with_at_attributes() -> None:
    body = b'<?xml version="1.0"?><availableAgents><agents><agent id="1" chatState="2"/></agents></availableAgents>'

    assert decode(body, "application/xml") == {
        "availableAgents": {"agents": {"agent": {"@id": "1", "@chatState": "2"}}}
    }


def test_xml_is_recognised_by_its_prolog_without_an_xml_content_type() -> None:
    assert decode(b'<?xml version="1.0"?><availableSlots>1</availableSlots>', "application/json") == {
        "availableSlots": "1"
    }


def test_xml_is_recognised_by_its_opening_tag_without_a_content_type() -> None:
    assert decode(b"<availability><chat>Online</chat></availability>", None) == {"availability": {"chat": "Online"}}


def test_json_body_labelled_as_xml_is_read_as_json() -> None:
    assert decode(b'{"availableSlots": 2}', "application/xml") == {"availableSlots": 2}


def test_unreadable_body_labelled_as_xml_is_a_payload_error_naming_xml() -> None:
    with pytest.raises(PayloadError, match="XML"):
        decode(b"availableSlots=2", "application/xml")


def test_xml_numbers_stay_strings() -> None:
    decoded = decode(
        b'<agent id="25025413" maxChats="-1"><elapsedTimeInState>0</elapsedTimeInState></agent>', "text/xml"
    )

    assert decoded == {"agent": {"@id": "25025413", "@maxChats": "-1", "elapsedTimeInState": "0"}}


def test_xml_empty_element_decodes_to_null() -> None:
    assert decode(b"<agent><skills/></agent>", "application/xml") == {"agent": {"skills": None}}


def test_xml_available_agents_give_the_same_records_as_the_json() -> None:
    from_json = parse_available_agents(decode(body_of("available_agents.json")))
    from_xml = parse_available_agents(decode(body_of("available_agents.xml"), "application/xml"))

    assert from_xml == from_json
    assert len(from_xml.agents) == 6
    assert from_xml.agents[3].skills == ()


def test_xml_chat_resource_gives_the_same_records_as_the_json() -> None:
    from_json = parse_chat(decode(body_of("chat.json")), chat_id="H1")
    from_xml = parse_chat(decode(body_of("chat.xml"), "application/xml"), chat_id="H1")

    assert from_xml == from_json
    assert from_xml.links == from_json.links
    assert from_xml.next_from == 4


def test_truncated_xml_is_a_payload_error() -> None:
    body = body_of("available_agents.xml")[:700]

    with pytest.raises(PayloadError, match="XML") as caught:
        decode(body, "application/xml")

    assert caught.value.body == body


@pytest.mark.parametrize("encoding", ["bogus", "utf-16"])
def test_xml_declaring_an_unknown_or_wrong_encoding_is_a_payload_error(encoding: str) -> None:
    with pytest.raises(PayloadError, match="XML"):
        decode(b'<?xml version="1.0" encoding="%s"?><availableSlots>1</availableSlots>' % encoding.encode(), None)


def test_xml_in_a_declared_single_byte_encoding_decodes() -> None:
    body = b'<?xml version="1.0" encoding="ISO-8859-1"?><info><agentName>Ren\xe9</agentName></info>'

    assert decode(body, "application/xml") == {"info": {"agentName": "Ren\u00e9"}}


def test_billion_laughs_xml_is_refused() -> None:
    body = body_of("billion_laughs.xml")

    with pytest.raises(PayloadError, match="XML refused") as caught:
        decode(body, "application/xml")

    assert caught.value.body == body


def test_external_entity_xml_is_refused() -> None:
    with pytest.raises(PayloadError, match="XML refused"):
        decode(body_of("external_entity.xml"), "application/xml")


def test_xml_with_an_external_dtd_is_refused() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE chat SYSTEM "http://127.0.0.1:9/evil.dtd"><chat/>'

    with pytest.raises(PayloadError, match="XML refused"):
        decode(body, "application/xml")


# --- totality ---


@pytest.mark.parametrize(("name", "content_type"), [("chat.json", "application/json"), ("chat.xml", "application/xml")])
def test_every_cut_of_a_body_is_a_payload_error(name: str, content_type: str) -> None:
    body = body_of(name).rstrip()

    for cut in range(0, len(body), 7):
        with pytest.raises(PayloadError):
            decode(body[:cut], content_type)


@settings(deadline=None)
@given(st.binary(max_size=200), st.sampled_from([None, "application/json", "application/xml", "text/html"]))
def test_any_bytes_decode_or_raise_a_payload_error(body: bytes, content_type: str | None) -> None:
    with contextlib.suppress(PayloadError):
        decode(body, content_type)


@settings(deadline=None)
@given(st.text(alphabet='<>?!/="&;[] axmlDOCTYPEhtml{}:,0123456789', max_size=60))
def test_markup_like_text_decodes_or_raises_a_payload_error(text: str) -> None:
    with contextlib.suppress(PayloadError):
        decode(text.encode(), None)


# --- read_limited against a real HTTP server ---


class _Handler(BaseHTTPRequestHandler):
    """Serves bodies of a chosen size, chunked or with Content-Length, and records how much it managed to send."""

    protocol_version = "HTTP/1.1"
    sent: ClassVar[dict[str, int]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        kind, size = self.path.strip("/").split("/")
        total = int(size)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if kind == "length":
            self.send_header("Content-Length", str(total))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        chunk = b'{"x":"' + b"a" * (64 * 1024 - 6)
        try:
            while sent < total:
                piece = chunk[: total - sent]
                if kind == "length":
                    self.wfile.write(piece)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            if kind != "length":
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            _Handler.sent[self.path] = sent


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def fetch(url: str, limit: int) -> bytes:
    with requests.get(url, stream=True, timeout=30) as response:
        return read_limited(response, limit, endpoint="availableAgents")


def wait_until_sent(path: str) -> int:
    """The server thread records its count once its writes fail or end; wait for that record (a hang guard only)."""
    for _ in range(3000):
        if path in _Handler.sent:
            return _Handler.sent[path]
        time.sleep(0.01)
    raise AssertionError(f"the server never finished serving {path}")


def test_default_limit_is_fifty_megabytes() -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES == 50 * 1024 * 1024


@pytest.mark.parametrize("kind", ["chunked", "length"])
def test_read_limited_returns_a_body_within_the_limit(server: str, kind: str) -> None:
    body = fetch(f"{server}/{kind}/100000", limit=200_000)

    assert len(body) == 100_000
    assert body.startswith(b'{"x":"aaa')


def test_read_limited_accepts_a_body_of_exactly_the_limit(server: str) -> None:
    assert len(fetch(f"{server}/chunked/131072", limit=131_072)) == 131_072


def test_read_limited_refuses_a_chunked_stream_over_the_limit_without_reading_the_rest(server: str) -> None:
    total = 512 * 1024 * 1024

    with pytest.raises(ResponseTooLarge) as caught:
        fetch(f"{server}/chunked/{total}", limit=1024 * 1024)

    assert caught.value.endpoint == "availableAgents"
    assert caught.value.status == 200
    assert len(caught.value.body) == TOO_LARGE_HEAD_BYTES
    assert caught.value.body.startswith(b'{"x":"aaa')
    assert wait_until_sent(f"/chunked/{total}") < total


def test_read_limited_refuses_a_declared_content_length_over_the_limit_up_front(server: str) -> None:
    total = 512 * 1024 * 1024

    with pytest.raises(ResponseTooLarge, match="Content-Length") as caught:
        fetch(f"{server}/length/{total}", limit=1024 * 1024)

    assert len(caught.value.body) <= TOO_LARGE_HEAD_BYTES
    assert caught.value.body.startswith(b'{"x":"aaa')
    assert wait_until_sent(f"/length/{total}") < total


def test_response_too_large_is_a_payload_error_so_the_body_is_dead_lettered(server: str) -> None:
    with pytest.raises(PayloadError):
        fetch(f"{server}/chunked/300000", limit=100_000)
