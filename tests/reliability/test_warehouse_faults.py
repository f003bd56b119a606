"""Warehouse faults: a database that is down, locked or restarted. A run fails clearly or waits; the next run
catches up without losing an event (the simulator's truth), and pooled connections survive a server restart.

PostgreSQL here is a throwaway server of this module's own (the recipe of ``tests/fixtures/postgres.py``), because
the tests stop and restart it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from pipelines.ingest import run_snapshot
from pipelines.storage import warehouse as warehouse_module
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse
from tests.fixtures.postgres import _bindir, _Server
from tests.reliability.support import compare_with_truth, pipeline_connection, write_report


class RestartableServer(_Server):
    """A throwaway PostgreSQL that a test may stop, start and restart on the same port."""

    def options(self) -> str:
        return f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"

    def pg_ctl(self, *args: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), *args)

    def down(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")

    def up(self) -> None:
        self.pg_ctl("-o", self.options(), "-l", str(self.dir / "server.log"), "-w", "start")

    def restart(self) -> None:
        self.pg_ctl("-o", self.options(), "-l", str(self.dir / "server.log"), "-m", "fast", "-w", "restart")


@pytest.fixture
def pg_server() -> Iterator[tuple[RestartableServer, str]]:
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries (initdb/pg_ctl)")
    server = RestartableServer(bindir)
    try:
        yield server, server.start()
    finally:
        server.stop()


def assert_caught_up(simulator, warehouse: Warehouse) -> dict:
    figures = compare_with_truth(simulator, warehouse, exact=True)
    assert figures["lost"] == 0 and figures["duplicated"] == 0, figures["bad_chats"]
    assert figures["cursor_ahead"] == 0 and figures["cursor_behind"] == 0
    assert figures["chats"] > 0
    return figures


@pytest.mark.postgres
def test_postgres_down_for_a_run_fails_it_clearly_and_the_next_run_catches_up(simulator, pg_server, tmp_path, reports):
    server, url = pg_server
    warehouse = Warehouse(url)
    parquet = ParquetStore(str(tmp_path / "parquet"))
    with pipeline_connection(simulator, tmp_path / "state") as connection:
        assert run_snapshot(connection, warehouse, parquet).status == "ok"
        simulator.clock.advance(60)
        server.down()
        with pytest.raises(sa.exc.OperationalError) as failure:
            run_snapshot(connection, warehouse, parquet)
        simulator.clock.advance(60)
        server.up()
        after = run_snapshot(connection, warehouse, parquet)
    message = str(failure.value)
    assert f"127.0.0.1:{server.port}" in message or str(server.port) in message, message
    assert after.status == "ok"
    figures = assert_caught_up(simulator, warehouse)
    write_report(reports, "warehouse_postgres_down", {"error": message.splitlines()[0], **figures})
    warehouse.dispose()


@pytest.mark.postgres
def test_a_postgres_restart_between_runs_is_survived_by_the_pooled_connections(simulator, pg_server, tmp_path, reports):
    server, url = pg_server
    warehouse = Warehouse(url)
    parquet = ParquetStore(str(tmp_path / "parquet"))
    statuses = []
    with pipeline_connection(simulator, tmp_path / "state") as connection:
        for _ in range(3):
            statuses.append(run_snapshot(connection, warehouse, parquet).status)
            server.restart()  # every pooled connection is now dead; the next checkout must notice (pre-ping)
            simulator.clock.advance(60)
        statuses.append(run_snapshot(connection, warehouse, parquet).status)
    assert statuses == ["ok"] * 4
    figures = assert_caught_up(simulator, warehouse)
    write_report(reports, "warehouse_postgres_restart", {"statuses": statuses, **figures})
    warehouse.dispose()


@pytest.mark.parametrize("blocked", ["file-where-folder", "folder-where-file"])
def test_an_unusable_sqlite_path_fails_the_run_clearly_and_the_next_run_catches_up(
    simulator, tmp_path, reports, blocked
):
    if blocked == "file-where-folder":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("a file where the warehouse's folder should be")
        bad_url = f"sqlite:///{blocker / 'warehouse.db'}"
    else:
        blocker = tmp_path / "a-folder.db"
        blocker.mkdir()
        bad_url = f"sqlite:///{blocker}"
    good = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    parquet = ParquetStore(str(tmp_path / "parquet"))
    with pipeline_connection(simulator, tmp_path / "state") as connection:
        assert run_snapshot(connection, good, parquet).status == "ok"
        simulator.clock.advance(60)
        with pytest.raises((OSError, ValueError, sa.exc.DBAPIError)) as failure:  # an unusable place is named
            run_snapshot(connection, Warehouse(bad_url), parquet)
        simulator.clock.advance(60)
        after = run_snapshot(connection, good, parquet)
    assert str(blocker) in str(failure.value), str(failure.value)
    assert after.status == "ok"
    figures = assert_caught_up(simulator, good)
    write_report(reports, f"warehouse_bad_sqlite_path_{blocked}", {"error": str(failure.value), **figures})
    good.dispose()


def _hold_write_transaction(path: str, ready, release) -> None:
    """In another process: open a write transaction on the SQLite file and keep it until told (or killed)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'held', '2026-01-01')")
    ready.send(True)
    release.recv()
    db.execute("ROLLBACK")
    db.close()


@pytest.fixture
def short_busy_timeout(monkeypatch):
    """The warehouse waits 30 s for a locked SQLite file; 2 s here, so that the test does not sit idle."""
    monkeypatch.setattr(warehouse_module, "SQLITE_BUSY_TIMEOUT_S", 2.0)


@pytest.mark.parametrize("released_after_s", [None, 0.5], ids=["held-past-timeout", "released-within-timeout"])
def test_a_locked_sqlite_file_makes_the_run_wait_then_fail_clearly_or_go_on(
    simulator, tmp_path, short_busy_timeout, released_after_s, reports
):
    path = tmp_path / "warehouse.db"
    warehouse = Warehouse(f"sqlite:///{path}")
    parquet = ParquetStore(str(tmp_path / "parquet"))
    context = multiprocessing.get_context("fork")
    with pipeline_connection(simulator, tmp_path / "state") as connection:
        assert run_snapshot(connection, warehouse, parquet).status == "ok"
        simulator.clock.advance(60)
        warehouse.dispose()  # no pooled connection of ours holds anything while the other process takes the lock
        ready_in, ready_out = context.Pipe(duplex=False)
        release_in, release_out = context.Pipe(duplex=False)
        holder = context.Process(target=_hold_write_transaction, args=(str(path), ready_out, release_in), daemon=True)
        holder.start()
        try:
            assert ready_in.poll(60) and ready_in.recv()
            if released_after_s is None:
                with pytest.raises(sa.exc.OperationalError) as failure:
                    run_snapshot(connection, warehouse, parquet)
                outcome = str(failure.value).splitlines()[0]
                assert "database is locked" in outcome
                release_out.send(True)
            else:
                threading.Timer(released_after_s, release_out.send, args=(True,)).start()
                outcome = run_snapshot(connection, warehouse, parquet).status
                assert outcome == "ok"
        finally:
            holder.join(30)
            if holder.is_alive():
                os.kill(holder.pid, signal.SIGKILL)
        simulator.clock.advance(60)
        assert run_snapshot(connection, warehouse, parquet).status == "ok"
    figures = assert_caught_up(simulator, warehouse)
    write_report(reports, f"warehouse_sqlite_locked_{released_after_s}", {"outcome": outcome, **figures})
    warehouse.dispose()


def test_via_dagster_a_run_with_an_unusable_warehouse_fails_and_says_where(monkeypatch, tmp_path):
    import dagster as dg

    from pipelines.definitions import build_definitions

    for name in ("LP_DOMAIN", "LP_BASE_URL", "LP_ACCOUNT_ID", "LP_USERNAME", "LP_PASSWORD", "LP_BEARER_TOKEN",
                 "LP_AGENT_LOGINS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the warehouse's folder should be")
    monkeypatch.setenv("PARQUET_ROOT", str(tmp_path / "parquet"))
    monkeypatch.setenv("LP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LP_SIMULATOR_START", "2026-11-26T10:00:00+00:00")
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{blocker / 'warehouse.db'}")
    job = build_definitions().resolve_job_def("snapshot_job")
    with dg.DagsterInstance.ephemeral() as instance:
        failed = job.execute_in_process(instance=instance, raise_on_error=False)
        monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.db'}")
        recovered = build_definitions().resolve_job_def("snapshot_job").execute_in_process(instance=instance)
    assert not failed.success
    messages = " ".join(
        event.event_specific_data.error.to_string()
        for event in failed.all_events
        if event.is_step_failure and event.event_specific_data and event.event_specific_data.error
    )
    assert str(blocker) in messages, messages
    assert recovered.success
