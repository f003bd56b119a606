"""SimClock: real time by default; set, accelerated, paused and advanced; reproducible in another process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipelines.liveperson.simulator import clock as clock_module
from pipelines.liveperson.simulator.clock import SimClock

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class FakeWall:
    """Stands in for ``time.time`` so tests move the wall clock instead of sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> FakeWall:
    fake = FakeWall()
    monkeypatch.setattr(clock_module.time, "time", fake)
    return fake


def test_by_default_it_tells_real_utc_time():
    before = datetime.now(UTC)
    now = SimClock().now()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC and before - timedelta(milliseconds=1) <= now <= after + timedelta(milliseconds=1)


def test_it_is_a_pipeline_clock_too(wall: FakeWall):
    clock = SimClock(at=AT, paused=True)
    assert clock() == clock.now() == AT


def test_set_time_runs_on_from_there_at_the_given_speed(wall: FakeWall):
    clock = SimClock()
    clock.set(at=AT, speed=60.0)
    wall.now += 2.0
    assert clock.now() == AT + timedelta(minutes=2)


def test_a_paused_clock_stands_still_and_advance_moves_it_exactly(wall: FakeWall):
    clock = SimClock()
    clock.set(at=AT, paused=True)
    wall.now += 3600
    assert clock.now() == AT
    clock.advance(90)
    assert clock.now() == AT + timedelta(seconds=90)


def test_resuming_continues_from_the_paused_time(wall: FakeWall):
    clock = SimClock(at=AT, paused=True)
    wall.now += 500
    clock.set(paused=False)
    wall.now += 10
    assert clock.now() == AT + timedelta(seconds=10)


def test_changing_speed_keeps_time_continuous(wall: FakeWall):
    clock = SimClock(at=AT)
    wall.now += 10
    clock.set(speed=100.0)
    assert clock.now() == AT + timedelta(seconds=10)
    wall.now += 1
    assert clock.now() == AT + timedelta(seconds=110)


def test_advance_while_running_adds_to_the_running_time(wall: FakeWall):
    clock = SimClock(at=AT, speed=2.0)
    wall.now += 5
    clock.advance(60)
    wall.now += 5
    assert clock.now() == AT + timedelta(seconds=80)


def test_state_round_trips_through_json_to_an_identical_clock(wall: FakeWall):
    clock = SimClock(at=AT, speed=60.0)
    wall.now += 7
    copy = SimClock.from_state(json.loads(json.dumps(clock.state())))
    for _ in range(3):
        wall.now += 1.5
        assert copy.now() == clock.now()
    clock.set(paused=True)
    paused_copy = SimClock.from_state(clock.state())
    wall.now += 100
    assert paused_copy.now() == clock.now()
    assert paused_copy.state() == clock.state()


def test_times_in_other_offsets_are_the_same_instant(wall: FakeWall):
    clock = SimClock(at=datetime(2026, 11, 27, 11, 0, tzinfo=timezone(timedelta(hours=2))), paused=True)
    assert clock.now() == AT and clock.now().tzinfo is UTC


def test_naive_times_and_non_positive_speeds_are_refused():
    clock = SimClock()
    with pytest.raises(ValueError):
        clock.set(at=datetime(2026, 11, 27, 9, 0))
    with pytest.raises(ValueError):
        clock.set(speed=0)
    with pytest.raises(ValueError):
        SimClock(speed=-1)
