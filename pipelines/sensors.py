"""The run-failure sensor: every failed run of this code location is logged and, when configured, posted to
``ALERT_WEBHOOK_URL`` (see ``pipelines/alerts.py`` for the message and what is redacted).

It monitors every job of the code location (no ``monitored_jobs``), so jobs added later (maintenance, replay)
are covered without touching it. It is on by default, like the schedules: an unattended pipeline needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg

from pipelines.alerts import DEFAULT_TIMEOUT_S, FailureAlert, failure_alert, post_alert, safe_url, secret_values

STEP_WRAPPER_ERROR = "DagsterExecutionStepExecutionError"  # Dagster's wrapper around the error our code raised


class AlertWebhookResource(dg.ConfigurableResource):
    """Where failure alerts go: ``ALERT_WEBHOOK_URL`` (unset: alerts are only logged)."""

    url: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S


def alert_resources_from_env(environ: Mapping[str, str] | None = None) -> dict[str, AlertWebhookResource]:
    """The alert resource, with the URL through ``dg.EnvVar`` (it may hold a token) when it is set."""
    environ = os.environ if environ is None else environ
    if environ.get("ALERT_WEBHOOK_URL", "").strip():
        return {"alert_webhook": AlertWebhookResource(url=dg.EnvVar("ALERT_WEBHOOK_URL"))}
    return {"alert_webhook": AlertWebhookResource()}


def failure_message(context: dg.RunFailureSensorContext) -> str:
    """The error our code raised in the first failed step (``step: Error: ...``), else Dagster's run message.

    Dagster wraps a step's exception in its own execution error; the alert names the exception underneath.
    """
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)  # Dagster's SerializableErrorInfo
        if error is None:
            continue
        while error.cls_name == STEP_WRAPPER_ERROR and error.cause is not None:
            error = error.cause
        return f"{event.step_key}: {short_class_name(error.message.strip(), error.cls_name)}"
    return context.failure_event.message or "run failed"


def short_class_name(message: str, cls_name: str | None) -> str:
    """``dagster._core.definitions.events.Failure: text`` -> ``Failure: text`` (the module path says nothing)."""
    qualified, separator, text = message.partition(": ")
    if separator and cls_name and qualified.endswith(f".{cls_name}"):
        return f"{cls_name}: {text}"
    return message


def failed_at(context: dg.RunFailureSensorContext) -> datetime:
    record = context.instance.get_run_record_by_id(context.dagster_run.run_id)
    if record is not None and record.end_time is not None:
        return datetime.fromtimestamp(record.end_time, tz=UTC)
    return datetime.now(UTC)


def alert_for(context: dg.RunFailureSensorContext) -> FailureAlert:
    run = context.dagster_run
    secrets = secret_values(os.environ)
    return failure_alert(run.job_name, run.run_id, failure_message(context), failed_at(context), secrets)


@dg.run_failure_sensor(
    name="run_failure_alert",
    description="Logs every failed run of this code location and posts it to ALERT_WEBHOOK_URL when set.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alert(context: dg.RunFailureSensorContext, alert_webhook: AlertWebhookResource) -> None:
    """Always log the failure (the sensor's tick log keeps it even without a webhook), then post it if configured."""
    alert = alert_for(context)
    context.log.error(alert.text)
    if not alert_webhook.url:
        context.log.info("ALERT_WEBHOOK_URL is not set: the failure is logged only")
        return
    if post_alert(alert_webhook.url, alert, timeout_s=alert_webhook.timeout_s):
        context.log.info(f"alert posted to {safe_url(alert_webhook.url)}")
    else:
        context.log.warning(f"alert could not be posted to {safe_url(alert_webhook.url)} (see the log above)")
