"""The writer lock: one holder at a time across processes, released when the holder dies, even by SIGKILL."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import pytest

from pipelines.storage.warehouse import Warehouse


def _hold_lock(url: str, report: Connection) -> None:
    """In a child process: take the writer lock, say so, and keep it until killed."""
    with Warehouse(url).writer_lock(wait_s=0) as acquired:
        report.send(acquired)
        signal.pause()



@pytest.fixture
def holder(warehouse: Warehouse) -> Iterator[BaseProcess]:
    """Another process (forked: no re-import) that holds the writer lock until it is killed."""
    receive, send = multiprocessing.get_context("fork").Pipe(duplex=False)
    process = multiprocessing.get_context("fork").Process(
        target=_hold_lock, args=(warehouse.url.render_as_string(hide_password=False), send), daemon=True
    )
    process.start()
    try:
        assert receive.poll(60), "the holder never reported"
        assert receive.recv() is True
        yield process
    finally:
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
        process.join(30)


def test_a_second_process_cannot_take_the_lock_while_it_is_held(
    warehouse: Warehouse, holder: BaseProcess
) -> None:
    with warehouse.writer_lock(wait_s=0.3) as acquired:
        assert acquired is False


def test_the_lock_is_released_when_its_holder_is_killed(warehouse: Warehouse, holder: BaseProcess) -> None:
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    assert holder.exitcode == -signal.SIGKILL
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
