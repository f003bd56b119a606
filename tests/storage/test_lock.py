"""The writer lock: one holder at a time across processes, released when the holder dies, even by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from pipelines.storage.warehouse import Warehouse

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pipelines.storage.warehouse import Warehouse
    with Warehouse(sys.argv[1]).writer_lock(wait_s=0) as acquired:
        print("held" if acquired else "busy", flush=True)
        time.sleep(600)
    """
)


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Warehouse]:
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    yield warehouse
    warehouse.dispose()


@pytest.fixture
def holder(warehouse: Warehouse) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the writer lock until it is killed."""
    url = warehouse.url.render_as_string(hide_password=False)
    process = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True,
                               cwd=os.getcwd())  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait(30)


def test_a_second_process_cannot_take_the_lock_while_it_is_held(
    warehouse: Warehouse, holder: subprocess.Popen[str]
) -> None:
    with warehouse.writer_lock(wait_s=0.3) as acquired:
        assert acquired is False


def test_the_lock_is_released_when_its_holder_is_killed(warehouse: Warehouse, holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    with warehouse.writer_lock(wait_s=30) as acquired:
        assert acquired is True


def test_the_lock_is_free_again_after_the_holder_leaves_its_block(warehouse: Warehouse) -> None:
    with warehouse.writer_lock(wait_s=0) as first:
        assert first is True
        with warehouse.writer_lock(wait_s=0) as nested:
            assert nested is False
    with warehouse.writer_lock(wait_s=0) as again:
        assert again is True


def test_in_memory_sqlite_uses_a_process_local_lock() -> None:
    warehouse = Warehouse("sqlite://")
    try:
        with warehouse.writer_lock(wait_s=0) as first, warehouse.writer_lock(wait_s=0.05) as second:
            assert (first, second) == (True, False)
        with warehouse.writer_lock(wait_s=0) as again:
            assert again is True
    finally:
        warehouse.dispose()
