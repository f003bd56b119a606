"""Prune Dagster's own run history, so that a snapshot every minute does not grow its storage without bound.

Dagster's ``retention`` setting (dagster.yaml) covers schedule and sensor ticks only; runs and their event logs
stay forever. ``snapshot_job`` alone is 1,440 runs a day, so old runs are deleted here through the instance API.

Which runs: only those of the jobs in ``PRUNED_JOBS``, the ones that run often and whose history is worth nothing
once old. ``reporting_job`` is left alone on purpose: it runs once a day, and its materializations are what the
UI shows as each daily partition's status (deleting its runs would make past days look never computed).

What is deleted with a run (``delete_run_and_artifacts``): the run record and its event log (``delete_run``),
and three things ``delete_run`` leaves behind (measured by ``bench/dagster_storage.py``):
- its captured stdout/stderr (the compute log manager's files under ``storage/<run_id>/``);
- its asset check executions (one row per check per run, ~2 KB each, in the event log's index), on any SQL
  event-log storage (SQLite, PostgreSQL);
- on the default SQLite storage, the run's own event-log database file ``history/runs/<run_id>.db``, which
  ``delete_run`` empties but leaves on disk at full size (320 KB per snapshot run, half of it empty tables).
Those three reach into Dagster's storage classes (``dagster._core``, documented under "Internals"), as no
public API removes them; a newer Dagster that cleans up itself makes them no-ops.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

# Dagster's storage classes (its API reference, "Internals"); no public alias exists in ``dagster``.
from dagster._core.storage.event_log import SqlEventLogStorage, SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

# Jobs whose runs are pruned: every minute, daily (this job) and hourly (dead-letter replay, replay_job.py).
# reporting_job is excluded (see above). A name that no job has prunes nothing.
PRUNED_JOBS: tuple[str, ...] = ("snapshot_job", "maintenance_job", "replay_job")

DEFAULT_RETENTION_DAYS = 7.0
DEFAULT_FAILED_RETENTION_DAYS = 30.0
DEFAULT_PAGE_SIZE = 200

# Finished runs only: a run in any other state (queued, starting, started, canceling, ...) is never deleted.
SUCCEEDED = (dg.DagsterRunStatus.SUCCESS,)
FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


class RetentionConfigError(ValueError):
    """A retention setting that is not a number of days >= 0; the message names the variable."""


def parse_retention_days(name: str, value: str | float | int) -> float:
    """``value`` as a number of days, or a ``RetentionConfigError`` naming ``name`` and what was wrong."""
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise RetentionConfigError(f"{name} must be a number of days (e.g. 7), got {value!r}") from None
    if not math.isfinite(days) or days < 0:
        raise RetentionConfigError(f"{name} must be a finite number of days >= 0, got {value!r}")
    return days


@dataclass(frozen=True)
class RetentionPolicy:
    """How long finished runs of ``jobs`` are kept: successful ones ``days``, failed or canceled ``failed_days``."""

    days: float = DEFAULT_RETENTION_DAYS
    failed_days: float = DEFAULT_FAILED_RETENTION_DAYS
    jobs: tuple[str, ...] = PRUNED_JOBS

    def __post_init__(self) -> None:
        parse_retention_days("days", self.days)
        parse_retention_days("failed_days", self.failed_days)
        if self.failed_days < self.days:
            raise RetentionConfigError(
                f"failed runs are kept at least as long as successful ones: failed_days {self.failed_days:g} "
                f"< days {self.days:g}"
            )


@dataclass(frozen=True)
class PruneResult:
    """What one pruning pass did, for logs and run metadata."""

    success_cutoff: datetime
    failed_cutoff: datetime
    deleted_by_status: Mapping[str, int] = field(default_factory=dict)
    deleted_by_job: Mapping[str, int] = field(default_factory=dict)
    kept: int = 0
    oldest_kept: datetime | None = None

    @property
    def deleted(self) -> int:
        return sum(self.deleted_by_status.values())


def delete_run_and_artifacts(instance: dg.DagsterInstance, run_id: str) -> None:
    """Delete the run, its event log, captured logs, asset check executions and (SQLite) event-log file.

    Afterwards this process must not read the deleted run's events: with the file gone, SQLite storage raises
    "no such table" instead of answering empty (the run itself is gone, so nothing in Dagster asks).
    """
    instance.delete_run(run_id)
    instance.compute_log_manager.delete_logs(prefix=[run_id])
    event_log = instance.event_log_storage
    if isinstance(event_log, SqlEventLogStorage):
        with event_log.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.delete().where(AssetCheckExecutionsTable.c.run_id == run_id))
    if isinstance(event_log, SqliteEventLogStorage):
        shard = event_log.path_for_shard(run_id)
        for path in (shard, f"{shard}-wal", f"{shard}-shm", f"{shard}-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


def _delete_pages(instance: dg.DagsterInstance, filters: dg.RunsFilter, page_size: int) -> Iterator[dg.DagsterRun]:
    """Delete every run matching ``filters``, oldest first, one page of records in memory at a time.

    Deleted runs drop out of the query, so each page is the first page again: no cursor to keep.
    """
    previous: set[str] = set()
    while True:
        records = instance.get_run_records(filters=filters, limit=page_size, ascending=True)
        page = {record.dagster_run.run_id for record in records}
        if page & previous:  # deleted, yet listed again: stop rather than loop forever
            raise RuntimeError(f"runs {sorted(page & previous)[:3]} are still listed after they were deleted")
        for record in records:
            delete_run_and_artifacts(instance, record.dagster_run.run_id)
            yield record.dagster_run
        if len(records) < page_size:
            return
        previous = page


def prune_runs(
    instance: dg.DagsterInstance,
    policy: RetentionPolicy | None = None,
    *,
    now: datetime | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> PruneResult:
    """Delete finished runs of ``policy.jobs`` older than the policy's ages (by creation time).

    The newest successful run of each job is always kept, whatever its age, so that after a long pause the UI
    still shows each asset's last materialization.
    """
    policy = policy or RetentionPolicy()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    success_cutoff = now - timedelta(days=policy.days)
    failed_cutoff = now - timedelta(days=policy.failed_days)
    by_status: Counter[str] = Counter()
    by_job: Counter[str] = Counter()
    for job in policy.jobs:
        newest = instance.get_run_records(filters=dg.RunsFilter(job_name=job, statuses=SUCCEEDED), limit=1)
        before = min(success_cutoff, newest[0].create_timestamp) if newest else success_cutoff
        for statuses, cutoff in ((SUCCEEDED, before), (FAILED, failed_cutoff)):
            filters = dg.RunsFilter(job_name=job, statuses=list(statuses), created_before=cutoff)
            for run in _delete_pages(instance, filters, page_size):
                by_status[run.status.value] += 1
                by_job[job] += 1
    kept = 0
    oldest_kept: datetime | None = None
    for job in policy.jobs:
        kept += instance.get_runs_count(filters=dg.RunsFilter(job_name=job))
        oldest = instance.get_run_records(filters=dg.RunsFilter(job_name=job), limit=1, ascending=True)
        if oldest and (oldest_kept is None or oldest[0].create_timestamp < oldest_kept):
            oldest_kept = oldest[0].create_timestamp
    return PruneResult(
        success_cutoff=success_cutoff,
        failed_cutoff=failed_cutoff,
        deleted_by_status=dict(by_status),
        deleted_by_job=dict(by_job),
        kept=kept,
        oldest_kept=oldest_kept,
    )
