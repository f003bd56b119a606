"""Transport: LivePerson's retry policy, timeouts, TLS verification and the response size limit."""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
import requests
from urllib3.exceptions import MaxRetryError
from urllib3.response import HTTPResponse

from pipelines.liveperson.client import AgentApiClient
from pipelines.liveperson.config import ApiSettings, simulator_settings
from pipelines.liveperson.errors import ApiHttpError, ApiUnreachable, ChatNotFound, ResponseTooLarge
from pipelines.liveperson.transport import LivePersonRetry, make_http_session
from tests.liveperson.client_support import settings_for

# --- the retry policy itself ---


def _failed(retry: LivePersonRetry, status: int, method: str = "GET", **headers: str) -> LivePersonRetry:
    return retry.increment(method, "/x", response=HTTPResponse(status=status, headers=headers))


def test_server_errors_wait_base_times_one_two_three_then_give_up() -> None:
    retry = LivePersonRetry.for_api(retry_base_s=5.0)
    waits = []
    for _ in range(3):
        retry = _failed(retry, 503)
        waits.append(retry.get_backoff_time())
    assert waits == [5.0, 10.0, 15.0]
    with pytest.raises(MaxRetryError):
        _failed(retry, 503)


def test_a_429_without_retry_after_waits_at_least_one_second() -> None:
    retry = _failed(LivePersonRetry.for_api(retry_base_s=0.01), 429)
    assert retry.get_backoff_time() == 1.0


def test_retry_after_is_honoured_with_a_floor_of_one_second_after_429_and_a_cap_of_two_minutes() -> None:
    retry = LivePersonRetry.for_api(retry_base_s=5.0)
    assert retry.get_retry_after(HTTPResponse(status=429, headers={"Retry-After": "0"})) == 1.0
    assert retry.get_retry_after(HTTPResponse(status=429, headers={"Retry-After": "3"})) == 3.0
    assert retry.get_retry_after(HTTPResponse(status=503, headers={"Retry-After": "3600"})) == 120.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 451])
def test_client_errors_other_than_429_are_never_retried(status: int) -> None:
    assert not LivePersonRetry.for_api(retry_base_s=5.0).is_retry("GET", status)


def test_posts_are_not_retried_on_a_status() -> None:
    retry = LivePersonRetry.for_api(retry_base_s=5.0)
    assert retry.is_retry("GET", 500) and retry.is_retry("GET", 429)
    assert not retry.is_retry("POST", 500)
    assert not retry.is_retry("POST", 429)


def test_login_is_retried_only_on_429_after_five_seconds() -> None:
    retry = LivePersonRetry.for_login()
    assert retry.is_retry("POST", 429)
    assert not retry.is_retry("POST", 500)
    assert _failed(retry, 429, "POST").get_backoff_time() == 5.0


# --- the policy over HTTP ---


def test_a_429_waits_for_retry_after_then_succeeds(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    client.healthy_session()
    simulator.faults.set(endpoint="availableAgents", kind="rate_limit", retry_after=1)
    lifted = threading.Timer(0.3, simulator.faults.clear)
    started = time.monotonic()
    lifted.start()
    page = client.available_agents()
    assert time.monotonic() - started >= 1.0
    assert len(page.agents) == 50
    assert simulator.stats.requests("availableAgents") == 2


def test_server_errors_are_retried_three_times_then_surface_as_api_http_error(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    client.healthy_session()
    simulator.faults.set(endpoint="info", kind="server_error", status=500)
    started = time.monotonic()
    with pytest.raises(ApiHttpError) as caught:
        client.info()
    assert time.monotonic() - started >= 0.05 * (1 + 2 + 3)
    assert (caught.value.endpoint, caught.value.status) == ("info", 500)
    assert simulator.stats.requests("info") == 4


def test_a_404_is_not_retried(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    with pytest.raises(ChatNotFound):
        client.poll_chat(client.healthy_session(), "H404", 0)
    assert simulator.stats.requests("chat/{chatId}") == 1


def test_a_failed_login_is_not_retried_unless_rate_limited(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path), simulator.clock.now)
    simulator.faults.set(endpoint="login", kind="server_error", status=500)
    with pytest.raises(ApiHttpError) as caught:
        client.info()
    assert (caught.value.endpoint, caught.value.status) == ("login", 500)
    assert simulator.stats.requests("login") == 1


def test_a_slow_answer_times_out_and_is_reported_as_unreachable(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path, LP_TIMEOUT_S="0.2"), simulator.clock.now)
    client.healthy_session()
    simulator.faults.set(endpoint="info", kind="latency", ms=600)
    with pytest.raises(ApiUnreachable, match="info: no answer"):
        client.info()
    assert simulator.stats.requests("info") == 2  # one retry of a broken read on a GET


def test_a_response_over_the_size_limit_is_refused(simulator, tmp_path: Path) -> None:
    client = AgentApiClient(settings_for(simulator, tmp_path, LP_MAX_RESPONSE_BYTES="2000"), simulator.clock.now)
    with pytest.raises(ResponseTooLarge) as caught:
        client.available_agents()
    assert (caught.value.endpoint, caught.value.status) == ("availableAgents", 200)
    assert 0 < len(caught.value.body) <= 4096


# --- TLS verification ---


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class _TinyAgentApi(BaseHTTPRequestHandler):
    """Just enough of the Agent API (login, agent session, info) to show a whole session over HTTPS."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if "/login" in self.path:
            self._answer(200, {"bearer": "tls-bearer", "csrf": "tls-csrf", "sessionTTl": "28800000"})
        else:
            href = f"https://localhost:{self.server.server_address[1]}/api/account/1/agentSession/tls-session"
            self._answer(201, {"agentSessionLocation": {"link": {"@href": href, "@rel": "location"}}})

    def do_GET(self) -> None:
        self._answer(200, {"info": {"id": "42", "agentName": "TLS agent", "maxChats": "2"}})

    def _answer(self, status: int, payload: object) -> None:
        body = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_api(self_signed: tuple[Path, Path]) -> Iterator[str]:
    cert, key = self_signed
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TinyAgentApi)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _tls_client(base_url: str, state_dir: Path, **env: str) -> AgentApiClient:
    settings = simulator_settings(
        {"LP_STATE_DIR": str(state_dir), "LP_RETRY_BASE_S": "0.01", **env},
        base_url=base_url,
        account_id="1",
        logins=[("tls-agent", "tls-password")],
    )
    return AgentApiClient(settings)


def test_a_self_signed_server_is_refused_without_a_ca_bundle(
    https_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(ApiUnreachable, match="TLS verification failed"):
        _tls_client(https_api, tmp_path).info()


def test_a_self_signed_server_is_accepted_when_lp_ca_bundle_names_its_certificate(
    https_api: str, self_signed: tuple[Path, Path], tmp_path: Path
) -> None:
    client = _tls_client(https_api, tmp_path, LP_CA_BUNDLE=str(self_signed[0]))
    assert client.info().agent_id == "42"


# --- the environment, read once per session ---


def test_proxies_and_ca_bundle_still_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corporate-ca.pem")
    http = make_http_session(ApiSettings(account_id="1", logins=()))
    merged = http.merge_environment_settings("https://va.agentvep.liveperson.net/api", {}, None, True, None)
    assert merged["proxies"]["https"] == "http://proxy.example:3128"
    assert merged["verify"] == "/etc/corporate-ca.pem"
    assert "https" not in http.merge_environment_settings("https://internal.example/x", {}, None, True, None)["proxies"]
    assert http.merge_environment_settings("https://x.example/", {}, None, "/lp-ca.pem", None)["verify"] == "/lp-ca.pem"


def test_a_netrc_entry_for_the_api_host_never_replaces_the_bearer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine va.agentvep.liveperson.net login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    http = make_http_session(ApiSettings(account_id="1", logins=()))
    request = requests.Request("GET", "https://va.agentvep.liveperson.net/x", headers={"Authorization": "Bearer b"})
    assert http.prepare_request(request).headers["Authorization"] == "Bearer b"
