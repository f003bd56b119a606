"""The maintenance job's settings, read from the environment through ``dg.EnvVar`` like ``pipelines/resources.py``.

Values are validated when the maintenance run uses them (``RunRetentionResource.policy``), not when the
definitions load: a mistyped retention setting fails the maintenance run with a message naming the variable,
and never stops the snapshots.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from pipelines.maintenance.dagster_runs import (
    DEFAULT_FAILED_RETENTION_DAYS,
    DEFAULT_RETENTION_DAYS,
    PRUNED_JOBS,
    RetentionConfigError,
    RetentionPolicy,
    parse_retention_days,
)
from pipelines.maintenance.storage_ops import storage_resources_from_env

# Environment variable -> resource field.
RETENTION_ENV_FIELDS = {
    "DAGSTER_RUN_RETENTION_DAYS": "retention_days",
    "DAGSTER_FAILED_RUN_RETENTION_DAYS": "failed_retention_days",
}


class RunRetentionResource(dg.ConfigurableResource):
    """How long Dagster keeps runs of the often-running jobs: successful ones, and failed or canceled ones."""

    retention_days: str = f"{DEFAULT_RETENTION_DAYS:g}"
    failed_retention_days: str = f"{DEFAULT_FAILED_RETENTION_DAYS:g}"

    def policy(self) -> RetentionPolicy:
        """The validated policy; a ``RetentionConfigError`` names the variable that holds a bad value."""
        days = {
            field_name: parse_retention_days(variable, getattr(self, field_name))
            for variable, field_name in RETENTION_ENV_FIELDS.items()
        }
        if days["failed_retention_days"] < days["retention_days"]:
            raise RetentionConfigError(
                f"DAGSTER_FAILED_RUN_RETENTION_DAYS ({self.failed_retention_days}) must be at least "
                f"DAGSTER_RUN_RETENTION_DAYS ({self.retention_days}): failed runs are kept longer, for diagnosis"
            )
        return RetentionPolicy(days=days["retention_days"], failed_days=days["failed_retention_days"], jobs=PRUNED_JOBS)


def maintenance_resources_from_env(environ: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """``dg.EnvVar`` for every retention variable that is set (``RETENTION_DAYS`` too), the defaults for the rest."""
    environ = os.environ if environ is None else environ
    retention = RunRetentionResource(
        **{field: dg.EnvVar(variable) for variable, field in RETENTION_ENV_FIELDS.items() if variable in environ}
    )
    return {"run_retention": retention, **storage_resources_from_env(environ)}
