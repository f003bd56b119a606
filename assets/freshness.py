"""Freshness of the ingest assets: how long without a new snapshot before Dagster warns, then fails.

The windows follow the schedule (``SNAPSHOT_CRON``): one missed tick is ordinary (a run skipped behind the writer
lock), two in a row warn, three fail. They are applied when the definitions are built, from the same environment
as the schedule and the resources, so a custom cron moves the windows with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import timedelta

import dagster as dg

from pipelines.resources import DEFAULT_SNAPSHOT_CRON, interval_seconds

WARN_AFTER_INTERVALS = 2
FAIL_AFTER_INTERVALS = 3


def snapshot_cron(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("SNAPSHOT_CRON", DEFAULT_SNAPSHOT_CRON)


def snapshot_freshness_policy(cron: str) -> dg.FreshnessPolicy:
    """Warn after 2, fail after 3 of the schedule's intervals without a materialization."""
    interval = timedelta(seconds=interval_seconds(cron))
    return dg.FreshnessPolicy.time_window(
        fail_window=FAIL_AFTER_INTERVALS * interval, warn_window=WARN_AFTER_INTERVALS * interval
    )


def with_snapshot_freshness(
    assets: Iterable[dg.AssetsDefinition], environ: Mapping[str, str] | None = None
) -> list[dg.AssetsDefinition]:
    """``assets`` with every spec carrying the freshness policy of the configured ``SNAPSHOT_CRON``."""
    policy = snapshot_freshness_policy(snapshot_cron(environ))
    return dg.map_asset_specs(lambda spec: spec.replace_attributes(freshness_policy=policy), list(assets))
