"""Freshness policies of the ingest assets follow the snapshot schedule: warn after 2, fail after 3 intervals."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from assets.reporting import REPORTING_ASSETS
from pipelines.definitions import INGEST_ASSETS, build_definitions

INGEST_KEYS = {key for asset in INGEST_ASSETS for key in asset.keys}
REPORTING_KEYS = {key for asset in REPORTING_ASSETS for key in asset.keys}


def policies(defs: dg.Definitions) -> dict[dg.AssetKey, dg.FreshnessPolicy | None]:
    graph = defs.resolve_asset_graph()
    return {key: graph.get(key).freshness_policy for key in graph.get_all_asset_keys()}


def windows(policy: dg.FreshnessPolicy | None) -> tuple[timedelta, timedelta | None]:
    assert policy is not None
    return policy.fail_window.to_timedelta(), policy.warn_window.to_timedelta()


def test_every_ingest_asset_warns_after_two_minutes_and_fails_after_three_on_the_default_cron(monkeypatch):
    monkeypatch.delenv("SNAPSHOT_CRON", raising=False)
    found = policies(build_definitions())
    assert found.keys() >= INGEST_KEYS and len(INGEST_KEYS) == 9
    for key in INGEST_KEYS:
        assert windows(found[key]) == (timedelta(minutes=3), timedelta(minutes=2)), key


@pytest.mark.parametrize(
    ("cron", "warn", "fail"),
    [
        ("*/5 * * * *", timedelta(minutes=10), timedelta(minutes=15)),
        ("0 * * * *", timedelta(hours=2), timedelta(hours=3)),
    ],
)
def test_a_custom_snapshot_cron_moves_the_windows_with_it(cron, warn, fail):
    found = policies(build_definitions({"SNAPSHOT_CRON": cron}))
    for key in INGEST_KEYS:
        assert windows(found[key]) == (fail, warn), key


def test_the_process_environment_sets_the_windows_when_none_is_given(monkeypatch):
    monkeypatch.setenv("SNAPSHOT_CRON", "*/10 * * * *")
    found = policies(build_definitions())
    assert windows(found[dg.AssetKey("snapshot_run")]) == (timedelta(minutes=30), timedelta(minutes=20))


def test_daily_reporting_assets_carry_no_snapshot_freshness_policy(monkeypatch):
    monkeypatch.delenv("SNAPSHOT_CRON", raising=False)
    found = policies(build_definitions())
    assert REPORTING_KEYS and all(found[key] is None for key in REPORTING_KEYS)
