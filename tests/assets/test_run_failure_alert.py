"""The run-failure sensor: a failed ``snapshot_job`` run (real instance, real failure) is posted to a real local
webhook with its job, run id, the error our code raised and the time; a dead webhook does not stop the sensor."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import dagster as dg

from pipelines.definitions import build_definitions
from pipelines.sensors import AlertWebhookResource, run_failure_alert
from tests.assets.api_env import point_at_simulator, run_snapshot_job
from tests.fixtures.webhook import closed_port_url, webhook_server

OUTAGE_START = datetime(2026, 1, 1, tzinfo=UTC)  # the simulator's clock stays at 2026-11-26 10:00
OUTAGE_END = datetime(2027, 1, 1, tzinfo=UTC)


def evaluate_sensor(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, webhook_url: str | None) -> None:
    """Evaluate the sensor on the run's failure event, as the daemon would, with the alert resource given."""
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"alert_webhook": AlertWebhookResource(url=webhook_url, timeout_s=5)},
    )
    run_failure_alert(context)


def test_a_run_failing_on_an_unwritable_warehouse_is_posted_with_the_error_that_names_it(embedded_env, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_URL", "sqlite:////proc/no-such-folder/warehouse.db")
    with dg.DagsterInstance.ephemeral() as instance, webhook_server() as webhook:
        result = run_snapshot_job(instance)
        assert not result.success
        evaluate_sensor(instance, result, webhook.url)
    (alert,) = webhook.received
    assert alert["job"] == "snapshot_job"
    assert alert["run_id"] == result.run_id
    assert alert["message"].startswith("available_agents: ValueError: the SQLite warehouse's folder /proc/no-such")
    assert alert["message"].endswith("(check WAREHOUSE_URL)")
    assert "\n" not in alert["message"]
    assert datetime.fromisoformat(alert["at"]).tzinfo is not None
    assert alert["run_id"] in alert["text"] and alert["message"] in alert["text"]


def test_a_password_that_appears_in_the_failure_is_not_posted(simulator, monkeypatch, tmp_path):
    ((username, password),) = simulator.logins(1)
    point_at_simulator(monkeypatch, tmp_path, simulator, [(username, password)])
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:////proc/{password}/warehouse.db")
    with dg.DagsterInstance.ephemeral() as instance, webhook_server() as webhook:
        result = run_snapshot_job(instance)
        evaluate_sensor(instance, result, webhook.url)
    (alert,) = webhook.received
    assert "folder /proc/[secret] cannot be created" in alert["message"]
    assert password not in json.dumps(alert)


def test_a_dead_webhook_is_logged_and_the_sensor_does_not_raise(embedded_env, monkeypatch, caplog, capfd):
    monkeypatch.setenv("WAREHOUSE_URL", "sqlite:////proc/no-such-folder/warehouse.db")
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_snapshot_job(instance)
        capfd.readouterr()
        with caplog.at_level(logging.WARNING, logger="pipelines.alerts"):
            evaluate_sensor(instance, result, closed_port_url())
    sensor_log = capfd.readouterr().err  # the sensor's context.log (Dagster's own handler on stderr)
    assert f"Dagster run of snapshot_job failed ({result.run_id})" in sensor_log
    assert "alert could not be posted to http://127.0.0.1:" in sensor_log
    assert f"alert for run {result.run_id} not delivered" in caplog.text


def test_without_a_webhook_the_failure_is_still_logged(embedded_env, monkeypatch, capfd):
    monkeypatch.setenv("WAREHOUSE_URL", "sqlite:////proc/no-such-folder/warehouse.db")
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_snapshot_job(instance)
        capfd.readouterr()
        evaluate_sensor(instance, result, None)
    sensor_log = capfd.readouterr().err
    assert f"Dagster run of snapshot_job failed ({result.run_id})" in sensor_log
    assert "ALERT_WEBHOOK_URL is not set" in sensor_log


def test_the_definitions_run_the_sensor_by_default_with_the_webhook_from_the_environment(monkeypatch):
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "https://hooks.example.com/services/T0KEN")
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("run_failure_alert")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    resource = defs.resources["alert_webhook"]
    assert isinstance(resource, AlertWebhookResource)
    assert resource.url == dg.EnvVar("ALERT_WEBHOOK_URL"), "read through EnvVar: never stored in Dagster's UI"


def test_an_api_outage_after_chats_were_open_fails_the_run_and_the_alert_names_the_first_error(
    simulator, monkeypatch, tmp_path
):
    point_at_simulator(monkeypatch, tmp_path, simulator, simulator.logins(2))
    with dg.DagsterInstance.ephemeral() as instance, webhook_server() as webhook:
        assert run_snapshot_job(instance).success
        simulator.faults.set(endpoint="*", kind="outage", probability=1.0, start=OUTAGE_START, end=OUTAGE_END)
        result = run_snapshot_job(instance)
        assert not result.success
        evaluate_sensor(instance, result, webhook.url)
    (alert,) = webhook.received
    assert alert["message"].startswith("snapshot_run: Failure: snapshot ")
    assert "nothing could be read or stored" in alert["message"]
    assert "first error: " in alert["message"] and "HTTP 503" in alert["message"]
