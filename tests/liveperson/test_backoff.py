"""Run-level outage back-off: 3 failed runs in a row, then pauses of 2, 4, 8 ... minutes, capped at 60."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.liveperson.backoff import OutageBackoff, pause_after

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class ManualClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_pause_schedule_is_nothing_then_2_4_8_minutes_doubling_up_to_60() -> None:
    minutes = [pause_after(n) / timedelta(minutes=1) for n in range(1, 12)]
    assert minutes == [0, 0, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_two_failed_runs_do_not_skip(tmp_path: Path, clock: ManualClock) -> None:
    backoff = OutageBackoff(tmp_path, clock)
    backoff.record_failure()
    backoff.record_failure()
    assert backoff.should_skip() == (False, "")


def test_third_failed_run_skips_polls_for_two_minutes(tmp_path: Path, clock: ManualClock) -> None:
    backoff = OutageBackoff(tmp_path, clock)
    for _ in range(3):
        backoff.record_failure()
    skip, reason = backoff.should_skip()
    assert skip and "3 failed runs" in reason
    clock.now = START + timedelta(minutes=1, seconds=59)
    assert backoff.should_skip()[0]
    clock.now = START + timedelta(minutes=2)
    assert backoff.should_skip() == (False, "")


def test_each_further_failure_doubles_the_pause(tmp_path: Path, clock: ManualClock) -> None:
    backoff = OutageBackoff(tmp_path, clock)
    for _ in range(3):
        backoff.record_failure()
    clock.now += timedelta(minutes=2)
    backoff.record_failure()  # the run after the pause fails again
    clock.now += timedelta(minutes=3, seconds=59)
    assert backoff.should_skip()[0]
    clock.now += timedelta(seconds=1)
    assert not backoff.should_skip()[0]


def test_a_success_ends_the_back_off(tmp_path: Path, clock: ManualClock) -> None:
    backoff = OutageBackoff(tmp_path, clock)
    for _ in range(4):
        backoff.record_failure()
    backoff.record_success()
    assert backoff.should_skip() == (False, "")
    backoff.record_failure()
    assert backoff.state().consecutive_failures == 1


def test_skips_are_counted_with_the_last_reason(tmp_path: Path, clock: ManualClock) -> None:
    backoff = OutageBackoff(tmp_path, clock)
    for _ in range(3):
        backoff.record_failure()
    backoff.record_skip()
    backoff.record_skip("operator pause")
    state = backoff.state()
    assert state.skips == 2
    assert state.last_reason == "operator pause"


def test_state_survives_a_new_process_and_is_owner_only(tmp_path: Path, clock: ManualClock) -> None:
    for _ in range(3):
        OutageBackoff(tmp_path, clock).record_failure()
    assert OutageBackoff(tmp_path, clock).should_skip()[0]
    assert stat.S_IMODE((tmp_path / "outage.json").stat().st_mode) == 0o600


def test_an_unreadable_state_file_starts_afresh(tmp_path: Path, clock: ManualClock) -> None:
    (tmp_path / "outage.json").write_text("{not json")
    backoff = OutageBackoff(tmp_path, clock)
    assert backoff.should_skip() == (False, "")
    backoff.record_failure()
    assert backoff.state().consecutive_failures == 1
