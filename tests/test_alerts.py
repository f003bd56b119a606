"""Failure alerts as a webhook receives them: short, secret-free JSON; an unreachable webhook never raises."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from pipelines.alerts import REDACTED, failure_alert, first_line, post_alert, secret_values
from tests.fixtures.webhook import closed_port_url, webhook_server

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def test_the_webhook_receives_job_run_message_and_time_as_json():
    alert = failure_alert("snapshot_job", "run-1", "available_agents: ValueError: boom\n  traceback", AT, ())
    with webhook_server() as webhook:
        assert post_alert(webhook.url, alert, timeout_s=5)
    (body,) = webhook.received
    assert webhook.content_types == ["application/json"]
    assert body == {
        "job": "snapshot_job",
        "run_id": "run-1",
        "message": "available_agents: ValueError: boom",
        "at": "2026-11-27T09:00:00+00:00",
        "text": "Dagster run of snapshot_job failed (run-1) at 2026-11-27T09:00:00+00:00: "
        "available_agents: ValueError: boom",
    }


def test_configured_secrets_never_reach_the_message():
    environ = {
        "LP_PASSWORD": "hunter2-password",
        "LP_BEARER_TOKEN": "bearer-abcdef",
        "LP_AGENT_LOGINS": json.dumps([{"username": "ann", "password": "ann-secret-pw"}]),
        "WAREHOUSE_URL": "postgresql+psycopg://etl:pg-secret-pw@db.internal/warehouse",
        "ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0KEN",
    }
    raw = (
        "login failed for hunter2-password with bearer-abcdef, ann-secret-pw, "
        "postgresql+psycopg://etl:pg-secret-pw@db.internal, https://hooks.example.com/services/T0KEN"
    )
    alert = failure_alert("snapshot_job", "run-2", raw, AT, secret_values(environ))
    text = json.dumps(alert.to_json())
    for secret in environ.values():
        assert secret not in text
    for secret in ("hunter2-password", "bearer-abcdef", "ann-secret-pw", "pg-secret-pw"):
        assert secret not in text
    assert alert.message.count(REDACTED) == 5


def test_a_long_message_is_cut_to_its_first_line_of_bounded_length():
    assert first_line("\n\n  first  \nsecond") == "first"
    assert len(first_line("x" * 5000)) == 500


def test_a_dead_webhook_is_logged_not_raised_and_its_token_is_not_logged(caplog):
    alert = failure_alert("reporting_job", "run-3", "boom", AT, ())
    url = closed_port_url() + "?token=T0KEN-XYZ"
    with caplog.at_level(logging.WARNING, logger="pipelines.alerts"):
        assert post_alert(url, alert, timeout_s=2) is False
    assert "run-3 not delivered to http://127.0.0.1:" in caplog.text
    assert "T0KEN-XYZ" not in caplog.text


def test_a_webhook_answering_an_error_status_is_logged_not_raised(caplog):
    alert = failure_alert("reporting_job", "run-4", "boom", AT, ())
    with webhook_server(status=500) as webhook, caplog.at_level(logging.WARNING, logger="pipelines.alerts"):
        assert post_alert(webhook.url, alert, timeout_s=5) is False
    assert len(webhook.received) == 1
    assert "refused by" in caplog.text and "HTTP 500" in caplog.text
