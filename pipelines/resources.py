"""Dagster resources: the Agent API connection, the warehouse, the Parquet store, and one snapshot run.

Every setting comes from the environment through ``dg.EnvVar`` (see ``resources_from_env``), so secrets are
never shown in Dagster's UI or written to its storage. ``SnapshotRunResource`` is the per-run state that the
ingest assets share on the in-process executor: one client, one open session per login, one warehouse lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg
from croniter import croniter
from pydantic import PrivateAttr

from pipelines.ingest import SnapshotRunner
from pipelines.liveperson.backoff import OutageBackoff
from pipelines.liveperson.config import settings_from_env
from pipelines.liveperson.connect import Connection, connect
from pipelines.storage.lock import writer_lock
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse

log = logging.getLogger(__name__)

DEFAULT_WAREHOUSE_URL = "sqlite:///data/warehouse.db"
DEFAULT_PARQUET_ROOT = "data/parquet"
DEFAULT_SNAPSHOT_CRON = "* * * * *"
LOCK_WAIT_S = 10.0

# Environment variable -> resource field. Connection variables decide simulator vs real API (config.py).
LIVEPERSON_ENV_FIELDS = {
    "LP_DOMAIN": "domain",
    "LP_ACCOUNT_ID": "account_id",
    "LP_USERNAME": "username",
    "LP_PASSWORD": "password",
    "LP_BEARER_TOKEN": "bearer_token",
    "LP_AGENT_LOGINS": "agent_logins",
    "LP_BASE_URL": "base_url",
    "LP_STATE_DIR": "state_dir",
    "LP_STORE_CHAT_TEXT": "store_chat_text",
    "LP_CA_BUNDLE": "ca_bundle",
    "LP_TIMEOUT_S": "timeout_s",
    "LP_RETRY_BASE_S": "retry_base_s",
    "LP_CHAT_CONCURRENCY": "chat_concurrency",
    "LP_MAX_RESPONSE_BYTES": "max_response_bytes",
    "LP_SIMULATOR_SEED": "simulator_seed",
    "LP_SIMULATOR_AGENTS": "simulator_agents",
    "LP_SIMULATOR_LOGINS": "simulator_logins",
    "LP_SIMULATOR_START": "simulator_start",
}


def interval_seconds(cron: str) -> int:
    """The schedule's interval (``snapshot_run.interval_s``): the gap between two consecutive ticks."""
    ticks = croniter(cron, datetime(2026, 1, 5, tzinfo=UTC))
    first = ticks.get_next(datetime)
    return int((ticks.get_next(datetime) - first).total_seconds())


class LivePersonResource(dg.ConfigurableResource):
    """Agent API settings, each field an ``LP_*`` variable; unset fields mean "not configured"."""

    domain: str | None = None
    account_id: str | None = None
    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    agent_logins: str | None = None
    base_url: str | None = None
    state_dir: str | None = None
    store_chat_text: str | None = None
    ca_bundle: str | None = None
    timeout_s: str | None = None
    retry_base_s: str | None = None
    chat_concurrency: str | None = None
    max_response_bytes: str | None = None
    simulator_seed: str | None = None
    simulator_agents: str | None = None
    simulator_logins: str | None = None
    simulator_start: str | None = None

    def as_env(self) -> dict[str, str]:
        """The settings back in the environment's spelling, so that one parser (config.py) reads both."""
        env = {}
        for variable, field_name in LIVEPERSON_ENV_FIELDS.items():
            value = getattr(self, field_name)
            if value is not None:
                env[variable] = str(value)
        return env

    def validate(self) -> None:
        """Fail at start-up, naming what is missing, on a partial configuration."""
        settings_from_env(self.as_env())


class WarehouseResource(dg.ConfigurableResource):
    url: str = DEFAULT_WAREHOUSE_URL

    def open(self) -> Warehouse:
        return Warehouse(self.url)


class ParquetResource(dg.ConfigurableResource):
    root: str = DEFAULT_PARQUET_ROOT

    def open(self) -> ParquetStore:
        return ParquetStore(self.root)


class SnapshotRunResource(dg.ConfigurableResource):
    """One snapshot run: holds the writer lock, the API connection and the runner for the run's duration.

    ``runner`` is None when the run must not poll (another run holds the lock, or the outage back-off says
    wait): the ingest assets then skip their outputs and say why.
    """

    liveperson: LivePersonResource
    warehouse: WarehouseResource
    parquet: ParquetResource
    snapshot_cron: str = DEFAULT_SNAPSHOT_CRON

    _stack: contextlib.ExitStack | None = PrivateAttr(default=None)
    _runner: SnapshotRunner | None = PrivateAttr(default=None)
    _skip_reason: str | None = PrivateAttr(default=None)
    _backoff: OutageBackoff | None = PrivateAttr(default=None)
    _finished: bool = PrivateAttr(default=False)

    @property
    def runner(self) -> SnapshotRunner | None:
        """The run's runner once ``open_run`` has started it; None when the run skips (see ``skip_reason``)."""
        return self._runner

    @property
    def skip_reason(self) -> str | None:
        return self._skip_reason

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Nothing happens here: Dagster also initializes resources after a run (e.g. ``dagster job execute``
        # loading outputs), and that must not start a second snapshot. The first ingest asset calls open_run().
        self._stack = contextlib.ExitStack()

    def open_run(self, logger: logging.Logger | dg.DagsterLogManager | None = None) -> SnapshotRunner | None:
        """Take the writer lock, connect, consult the outage back-off and begin the snapshot (once per run)."""
        if self._runner is not None or self._skip_reason is not None:
            return self._runner
        assert self._stack is not None, "open_run() outside of a run"
        logger = logger or log
        env = self.liveperson.as_env()
        warehouse = self.warehouse.open()
        self._stack.callback(warehouse.dispose)
        if not self._stack.enter_context(writer_lock(warehouse, LOCK_WAIT_S)):
            self._skip_reason = f"another run holds the warehouse writer lock (waited {LOCK_WAIT_S:.0f} s)"
            logger.warning(f"skipping this snapshot: {self._skip_reason}")
            return None
        connection: Connection = self._stack.enter_context(connect(env))
        self._backoff = OutageBackoff(connection.settings.state_dir, connection.clock)
        skip, reason = self._backoff.should_skip()
        if skip:
            self._backoff.record_skip(reason)
            self._skip_reason = f"outage back-off: {reason}"
            logger.warning(f"skipping this snapshot: {self._skip_reason}")
            return None
        runner = SnapshotRunner.for_connection(
            connection,
            warehouse,
            self.parquet.open(),
            interval_s=interval_seconds(self.snapshot_cron),
            progress=logger.info,
        )
        runner.begin()
        self._runner = runner
        return runner

    def finish(self) -> None:
        """Close the run (the ``snapshot_run`` asset) and feed the outage back-off."""
        assert self._runner is not None
        summary = self._runner.finish()
        self._finished = True
        if self._backoff is not None:
            if summary.status == "failed":
                self._backoff.record_failure()
            else:
                self._backoff.record_success()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        try:
            if self._runner is not None and not self._finished:
                # A step raised: record the run as failed rather than leave it looking unfinished.
                summary = self._runner.finish(crashed=True)
                if self._backoff is not None and summary.status == "failed":
                    self._backoff.record_failure()
        finally:
            if self._stack is not None:
                self._stack.close()


def resources_from_env(environ: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """Build the resources with ``dg.EnvVar`` for every variable that is set, defaults for the rest."""
    environ = os.environ if environ is None else environ
    liveperson = LivePersonResource(
        **{field: dg.EnvVar(variable) for variable, field in LIVEPERSON_ENV_FIELDS.items() if variable in environ}
    )
    warehouse = WarehouseResource(url=dg.EnvVar("WAREHOUSE_URL")) if "WAREHOUSE_URL" in environ else WarehouseResource()
    parquet = ParquetResource(root=dg.EnvVar("PARQUET_ROOT")) if "PARQUET_ROOT" in environ else ParquetResource()
    snapshot = SnapshotRunResource(
        liveperson=liveperson,
        warehouse=warehouse,
        parquet=parquet,
        snapshot_cron=environ.get("SNAPSHOT_CRON", DEFAULT_SNAPSHOT_CRON),
    )
    return {"liveperson": liveperson, "warehouse": warehouse, "parquet": parquet, "snapshot": snapshot}
