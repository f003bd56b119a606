"""Configuration from the environment: the simulator only when nothing is set, never a silent fall-back."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from pipelines.liveperson.config import ApiSettings, Credentials, settings_from_env
from pipelines.liveperson.errors import ConfigError

SECRET = "s3cret-password"
BEARER = "bearer-token-value"


def test_empty_environment_means_the_embedded_simulator() -> None:
    assert settings_from_env({}) is None


def test_non_connection_variables_alone_still_mean_the_simulator() -> None:
    assert settings_from_env({"LP_STATE_DIR": "/tmp/x", "LP_STORE_CHAT_TEXT": "true", "PATH": "/bin"}) is None


def test_account_id_alone_is_an_error_naming_the_missing_credentials() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_env({"LP_ACCOUNT_ID": "1234"})
    message = str(caught.value)
    assert "LP_USERNAME" in message and "LP_PASSWORD" in message and "LP_BEARER_TOKEN" in message
    assert "LP_AGENT_LOGINS" in message


def test_credentials_without_account_id_are_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="LP_ACCOUNT_ID"):
        settings_from_env({"LP_USERNAME": "agent", "LP_PASSWORD": SECRET})


def test_username_without_password_names_the_password() -> None:
    with pytest.raises(ConfigError, match="missing: LP_PASSWORD"):
        settings_from_env({"LP_ACCOUNT_ID": "1", "LP_USERNAME": "agent"})


def test_a_domain_alone_is_a_partial_configuration_not_the_simulator() -> None:
    with pytest.raises(ConfigError, match="LP_ACCOUNT_ID"):
        settings_from_env({"LP_DOMAIN": "va.agentvep.liveperson.net"})


def test_single_login_with_domain_gives_an_https_base_url_and_the_host_as_source() -> None:
    settings = settings_from_env(
        {"LP_ACCOUNT_ID": "1234", "LP_USERNAME": "agent", "LP_PASSWORD": SECRET, "LP_DOMAIN": "va.lp.net"}
    )
    assert settings is not None
    assert settings.base_url == "https://va.lp.net"
    assert settings.source == "va.lp.net"
    assert settings.logins == (Credentials("agent", SECRET),)
    assert not settings.simulated


def test_base_url_overrides_the_domain() -> None:
    settings = settings_from_env(
        {"LP_ACCOUNT_ID": "1", "LP_BEARER_TOKEN": BEARER, "LP_DOMAIN": "a.b", "LP_BASE_URL": "http://127.0.0.1:8765/"}
    )
    assert settings is not None and settings.base_url == "http://127.0.0.1:8765"
    assert settings.source == "127.0.0.1"


def test_without_domain_or_base_url_the_host_is_left_for_the_domain_api_lookup() -> None:
    settings = settings_from_env({"LP_ACCOUNT_ID": "1", "LP_BEARER_TOKEN": BEARER})
    assert settings is not None and settings.base_url is None
    assert settings.with_host("z1.lp.net").base_url == "https://z1.lp.net"


def test_bearer_alone_is_a_login_without_username() -> None:
    settings = settings_from_env({"LP_ACCOUNT_ID": "1", "LP_BEARER_TOKEN": BEARER})
    assert settings is not None
    (login,) = settings.logins
    assert login.username is None and login.bearer == BEARER and not login.can_login


def test_defaults_of_the_non_connection_settings() -> None:
    settings = settings_from_env({"LP_ACCOUNT_ID": "1", "LP_BEARER_TOKEN": BEARER})
    assert settings is not None
    assert settings.state_dir == Path("data/state")
    assert settings.store_chat_text is False
    assert settings.timeout_s == 30.0
    assert settings.max_response_bytes == 50 * 1024 * 1024
    assert settings.ca_bundle is None
    assert settings.retry_base_s == 5.0
    assert settings.chat_concurrency == 32


def test_non_connection_settings_are_read(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "LP_ACCOUNT_ID": "1",
        "LP_BEARER_TOKEN": BEARER,
        "LP_STATE_DIR": str(tmp_path / "state"),
        "LP_STORE_CHAT_TEXT": "TRUE",
        "LP_TIMEOUT_S": "2.5",
        "LP_MAX_RESPONSE_BYTES": "1000",
        "LP_CA_BUNDLE": str(bundle),
        "LP_RETRY_BASE_S": "0.05",
        "LP_CHAT_CONCURRENCY": "3",
    }
    settings = settings_from_env(env)
    assert settings is not None
    assert (settings.state_dir, settings.store_chat_text, settings.timeout_s) == (tmp_path / "state", True, 2.5)
    assert (settings.max_response_bytes, settings.ca_bundle) == (1000, str(bundle))
    assert (settings.retry_base_s, settings.chat_concurrency) == (0.05, 3)


@pytest.mark.parametrize(
    ("name", "value"),
    [("LP_TIMEOUT_S", "soon"), ("LP_TIMEOUT_S", "0"), ("LP_CHAT_CONCURRENCY", "-1"), ("LP_STORE_CHAT_TEXT", "maybe")],
)
def test_malformed_values_are_errors_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        settings_from_env({"LP_ACCOUNT_ID": "1", "LP_BEARER_TOKEN": BEARER, name: value})


def test_a_missing_ca_bundle_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match="LP_CA_BUNDLE"):
        settings_from_env({"LP_ACCOUNT_ID": "1", "LP_BEARER_TOKEN": BEARER, "LP_CA_BUNDLE": "/nonexistent/ca.pem"})


def test_secrets_never_appear_in_the_repr_of_settings() -> None:
    settings = settings_from_env(
        {"LP_ACCOUNT_ID": "1", "LP_USERNAME": "agent", "LP_PASSWORD": SECRET, "LP_BEARER_TOKEN": BEARER}
    )
    text = repr(settings)
    assert "agent" in text
    assert SECRET not in text and BEARER not in text


def test_agent_logins_inline_json_gives_one_login_each() -> None:
    logins = [{"username": "a1", "password": "p1"}, {"username": "a2", "password": "p2"}]
    settings = settings_from_env({"LP_ACCOUNT_ID": "1", "LP_AGENT_LOGINS": orjson.dumps(logins).decode()})
    assert isinstance(settings, ApiSettings)
    assert settings.logins == (Credentials("a1", "p1"), Credentials("a2", "p2"))


def test_agent_logins_from_an_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "logins.json"
    path.write_bytes(orjson.dumps([{"username": "a1", "password": "p1"}]))
    os.chmod(path, 0o600)
    settings = settings_from_env({"LP_ACCOUNT_ID": "1", "LP_AGENT_LOGINS": str(path)})
    assert settings is not None and settings.logins == (Credentials("a1", "p1"),)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_agent_logins_file_readable_by_group_or_world_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "logins.json"
    path.write_bytes(orjson.dumps([{"username": "a1", "password": "p1"}]))
    os.chmod(path, mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        settings_from_env({"LP_ACCOUNT_ID": "1", "LP_AGENT_LOGINS": str(path)})


@pytest.mark.parametrize(
    "value",
    [
        '[{"username": "a1"}]',
        "[]",
        '{"username": "a1", "password": "p"}',
        "[not json",
        '[{"username": "", "password": "p"}]',
    ],
)
def test_malformed_agent_logins_are_refused_without_echoing_passwords(value: str) -> None:
    with pytest.raises(ConfigError, match="LP_AGENT_LOGINS") as caught:
        settings_from_env({"LP_ACCOUNT_ID": "1", "LP_AGENT_LOGINS": value})
    assert '"p"' not in str(caught.value)


def test_a_missing_agent_logins_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        settings_from_env({"LP_ACCOUNT_ID": "1", "LP_AGENT_LOGINS": "/nonexistent/logins.json"})


def test_duplicate_usernames_in_agent_logins_are_refused() -> None:
    value = '[{"username": "a1", "password": "p1"}, {"username": "a1", "password": "p2"}]'
    with pytest.raises(ConfigError, match="twice"):
        settings_from_env({"LP_ACCOUNT_ID": "1", "LP_AGENT_LOGINS": value})
