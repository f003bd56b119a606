from datetime import UTC

from pipelines.clock import system_clock


def test_system_clock_is_timezone_aware_utc():
    assert system_clock().tzinfo is UTC
