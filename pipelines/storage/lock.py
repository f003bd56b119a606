"""The warehouse writer lock: only one run writes at a time; a second one waits briefly, then skips.

The lock must vanish with its holder, however it dies (SIGKILL included), or one crash would stop every later
run: PostgreSQL releases a session advisory lock when the connection drops, and the kernel releases a
``flock`` when the process's file descriptors close.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from pipelines.storage.warehouse import Warehouse

ADVISORY_KEY = 0x4C505F575254  # "LP_WRT": a constant shared by every writer of one PostgreSQL database.
POLL_S = 0.1

_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


@contextmanager
def writer_lock(warehouse: Warehouse, wait_s: float) -> Iterator[bool]:
    """Yield True while holding the lock, or False if it stayed taken for ``wait_s`` seconds."""
    if warehouse.dialect == "postgresql":
        with _advisory_lock(warehouse.engine, wait_s) as acquired:
            yield acquired
    elif warehouse.sqlite_path is not None:
        with _file_lock(warehouse.sqlite_path.with_name(warehouse.sqlite_path.name + ".writer.lock"), wait_s) as acq:
            yield acq
    else:
        with _process_lock(str(warehouse.url), wait_s) as acquired:
            yield acquired


def _poll(try_once: Callable[[], bool], wait_s: float) -> bool:
    deadline = time.monotonic() + max(wait_s, 0.0)
    while True:
        if try_once():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0.0)))


@contextmanager
def _advisory_lock(engine: sa.Engine, wait_s: float) -> Iterator[bool]:
    """A session-level advisory lock on a dedicated autocommit connection (no transaction stays open)."""
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        acquired = _poll(
            lambda: bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar()),
            wait_s,
        )
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                except sa.exc.DBAPIError:
                    conn.invalidate()  # a dropped connection has released the lock already; never pool it
    finally:
        conn.close()


@contextmanager
def _file_lock(path: os.PathLike[str], wait_s: float) -> Iterator[bool]:
    """An exclusive ``flock`` on a file next to the database (per open file, so threads exclude each other too)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:

        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        acquired = _poll(try_once, wait_s)
        try:
            yield acquired
        finally:
            if acquired:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _process_lock(key: str, wait_s: float) -> Iterator[bool]:
    """In-memory SQLite lives in one process: a process-local lock is the whole story."""
    with _process_locks_guard:
        lock = _process_locks.setdefault(key, threading.Lock())
    acquired = lock.acquire(timeout=max(wait_s, 0.0))
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()
