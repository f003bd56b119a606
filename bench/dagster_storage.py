"""Dagster's own storage (DAGSTER_HOME) after weeks of snapshots, without pruning, with ``delete_run`` alone, and
with ``maintenance_job`` (``pipelines/maintenance/dagster_runs.py``) at its default ages.

usage: python bench/dagster_storage.py RUNS_PER_DAY [--days 14] [--real-runs 20] [--failed-share 0.01]

1. Real runs: ``--real-runs`` runs of ``snapshot_job``, executed in process against the embedded simulator
   (SQLite warehouse, Parquet and session cache in a temporary folder), on a fresh DAGSTER_HOME with Dagster's
   default SQLite storage: ``history/runs.db`` (runs), ``history/runs/<run_id>.db`` (one event log per run),
   ``history/runs/index.db`` (asset events and asset check executions), ``schedules/``, and ``storage/<run_id>/``
   (captured stdout/stderr). Measured per run: events, and the bytes each part grew by.
2. History: RUNS_PER_DAY x ``--days`` copies of those real runs, evenly spread over the past ``--days`` days,
   ``--failed-share`` of them marked FAILURE. Executing that many runs would take hours, so they are cloned in
   Dagster's SQLite files: each clone is a template's ``runs`` row (new run id, back-dated ``create_timestamp``,
   start and end time) with its ``run_tags``, a copy of its event-log file and captured logs, and copies of its
   rows in ``index.db`` (``event_logs``, ``asset_event_tags``, ``asset_check_executions``). Byte for byte what
   the real runs wrote, so the sizes are real; only the timestamps and ids are new.
3. The same home three ways: as is (no pruning); a copy where Dagster's ``instance.delete_run`` alone deleted the
   runs that the policy would delete; and the original after one in-process run of ``maintenance_job`` (default
   ages, 7 days successful, 30 days failed).

Two sizes are printed for each: ``files``, the bytes on disk (what ``du`` shows; SQLite files never shrink
without VACUUM, and a deleted row's pages stay in the file as free pages for later inserts), and ``live``, the
SQLite files counted as (page_count - freelist_count) x page_size (what a VACUUM would leave) plus every other
file as is.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _harness import fmt, load, table, tmpdir

from pipelines.liveperson.config import CONNECTION_VARIABLES

SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"
MB = 1024 * 1024


@dataclass(frozen=True)
class Size:
    files: int
    live: int


def sqlite_live_bytes(path: Path) -> int:
    """Pages in use: what the file would hold after VACUUM (reads through the WAL, changes nothing)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        page_size, pages, free = (
            conn.execute(f"pragma {p}").fetchone()[0] for p in ("page_size", "page_count", "freelist_count")
        )
    conn.close()
    return (pages - free) * page_size


def home_size(home: Path, part: str = "") -> Size:
    """Bytes under ``home/part``: files on disk, and live bytes (SQLite pages in use + other files)."""
    files = live = 0
    for path in (home / part).rglob("*"):
        if not path.is_file():
            continue
        size = path.stat().st_size
        files += size
        if path.suffix == ".db":
            live += sqlite_live_bytes(path)
        elif not path.name.endswith(("-wal", "-shm")):
            live += size
    return Size(files, live)


def parts(home: Path) -> dict[str, Size]:
    shards = Size(0, 0)
    for path in (home / "history" / "runs").glob("*.db"):
        if path.name != "index.db":
            shards = Size(shards.files + path.stat().st_size, shards.live + sqlite_live_bytes(path))
    index, runs = home / "history" / "runs" / "index.db", home / "history" / "runs.db"
    return {
        "run event-log files (history/runs/<id>.db)": shards,
        "index.db (asset events, check executions)": Size(index.stat().st_size, sqlite_live_bytes(index)),
        "runs.db (runs, tags)": Size(runs.stat().st_size, sqlite_live_bytes(runs)),
        "captured logs (storage/)": home_size(home, "storage"),
    }


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null (Dagster's capture of a step's output still sees everything)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def embedded_environment(work: Path) -> None:
    for name in CONNECTION_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(
        WAREHOUSE_URL=f"sqlite:///{work}/warehouse.db",
        PARQUET_ROOT=str(work / "parquet"),
        LP_STATE_DIR=str(work / "state"),
        LP_SIMULATOR_START="2026-11-26T10:00:00+00:00",
        LP_SIMULATOR_LOGINS="3",
    )


def new_home(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return path


def copy_rows(conn: sqlite3.Connection, table_name: str, where: str, args: tuple, changes: dict) -> list[tuple]:
    """Insert a copy of the matching rows with ``changes`` (column -> value or function of the row); new ids."""
    columns = [row[1] for row in conn.execute(f"pragma table_info({table_name})") if row[1] != "id"]
    rows = conn.execute(f"select id, {', '.join(columns)} from {table_name} where {where}", args).fetchall()
    mapping = []
    for old_id, *values in rows:
        row = dict(zip(columns, values, strict=True))
        for column, change in changes.items():
            row[column] = change(row) if callable(change) else change
        cursor = conn.execute(
            f"insert into {table_name} ({', '.join(columns)}) values ({', '.join('?' * len(columns))})",
            [row[c] for c in columns],
        )
        mapping.append((old_id, cursor.lastrowid))
    return mapping


def clone_history(home: Path, templates: list[str], days: int, per_day: int, failed_share: float, now: datetime) -> int:
    """``days`` x ``per_day`` back-dated copies of the template runs (see the module docstring). Returns failures."""
    runs_db = sqlite3.connect(home / "history" / "runs.db")
    index_db = sqlite3.connect(home / "history" / "runs" / "index.db")
    shards, logs = home / "history" / "runs", home / "storage"
    total = days * per_day
    step = timedelta(days=days) / total
    failed_every = round(1 / failed_share) if failed_share > 0 else 0
    failures = 0
    for i in range(total):  # oldest first, so that row ids grow with time as in a real history
        template = templates[i % len(templates)]
        run_id = str(uuid.uuid4())
        created = (now - timedelta(days=days) + i * step).astimezone(UTC).replace(tzinfo=None)
        failed = failed_every and i % failed_every == failed_every - 1
        failures += bool(failed)
        start, end = runs_db.execute("select start_time, end_time from runs where run_id = ?", (template,)).fetchone()

        def body(row: dict, run_id: str = run_id, template: str = template, failed: bool = bool(failed)) -> str:
            text = row["run_body"].replace(template, run_id)
            return text.replace("RunStatus.SUCCESS", "RunStatus.FAILURE") if failed else text

        copy_rows(
            runs_db,
            "runs",
            "run_id = ?",
            (template,),
            {
                "run_id": run_id,
                "run_body": body,
                "status": "FAILURE" if failed else "SUCCESS",
                "create_timestamp": created.strftime(SQLITE_TS),
                "update_timestamp": (created + timedelta(seconds=end - start)).strftime(SQLITE_TS),
                "start_time": created.replace(tzinfo=UTC).timestamp(),
                "end_time": created.replace(tzinfo=UTC).timestamp() + (end - start),
            },
        )
        copy_rows(runs_db, "run_tags", "run_id = ?", (template,), {"run_id": run_id})
        events = dict(
            copy_rows(
                index_db,
                "event_logs",
                "run_id = ?",
                (template,),
                {"run_id": run_id, "event": lambda row, t=template, r=run_id: row["event"].replace(t, r)},
            )
        )
        for old, new in events.items():
            copy_rows(index_db, "asset_event_tags", "event_id = ?", (old,), {"event_id": new})
        copy_rows(
            index_db,
            "asset_check_executions",
            "run_id = ?",
            (template,),
            {
                "run_id": run_id,
                "evaluation_event": lambda row, t=template, r=run_id: (row["evaluation_event"] or "").replace(t, r),
                "evaluation_event_storage_id": lambda row, ids=events: ids.get(row["evaluation_event_storage_id"]),
                "materialization_event_storage_id": (
                    lambda row, ids=events: ids.get(row["materialization_event_storage_id"])
                ),
            },
        )
        shutil.copyfile(shards / f"{template}.db", shards / f"{run_id}.db")
        if (logs / template).exists():
            shutil.copytree(logs / template, logs / run_id)
        if i % 1000 == 999:
            runs_db.commit()
            index_db.commit()
    runs_db.commit()
    index_db.commit()
    runs_db.close()
    index_db.close()
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_per_day", type=int, help="snapshot runs per simulated day (1,440 = every minute)")
    parser.add_argument("--days", type=int, default=14, help="days of history (more than the 7 days kept)")
    parser.add_argument("--real-runs", type=int, default=20, help="real snapshot_job runs measured and cloned")
    parser.add_argument("--failed-share", type=float, default=0.01, help="share of cloned runs marked FAILURE")
    args = parser.parse_args()

    work = Path(tmpdir("dagster-storage-"))
    embedded_environment(work)
    home = new_home(work / "home")
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.maintenance.dagster_runs import RetentionPolicy

    snapshot_job = build_definitions().resolve_job_def("snapshot_job")
    try:
        # 1. Real runs. The first one creates the storage files (fixed costs) and is not counted per run.
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # Dagster's console log at its default level (DEBUG), as a deployed run writes it to its captured
            # stderr (storage/<run_id>/compute_logs); not shown here.
            with silenced_stderr():
                warmup = snapshot_job.execute_in_process(instance=instance).run_id
                before, before_parts = home_size(home), parts(home)
                started = time.perf_counter()
                templates = [snapshot_job.execute_in_process(instance=instance).run_id for _ in range(args.real_runs)]
                seconds = time.perf_counter() - started
            events = [len(instance.all_logs(run_id)) for run_id in templates]
        with sqlite3.connect(home / "history" / "runs" / "index.db") as index:
            checks = index.execute(
                f"select count(*) from asset_check_executions where run_id in ({', '.join('?' * len(templates))})",
                templates,
            ).fetchone()[0]
        index.close()
        after, after_parts = home_size(home), parts(home)
        n = args.real_runs
        per_run = Size((after.files - before.files) // n, (after.live - before.live) // n)
        print(
            f"{n} real snapshot_job runs (+1 warm-up {warmup[:8]}), in process on the embedded simulator: "
            f"{seconds / n:.2f} s/run, {sum(events) / n:.0f} events/run, "
            f"{checks / n:.0f} asset check executions/run; "
            f"{load()}"
        )
        rows = [
            [name, fmt((after_parts[name].files - b.files) / n), fmt((after_parts[name].live - b.live) / n)]
            for name, b in before_parts.items()
        ]
        rows.append(["total per run", fmt(per_run.files), fmt(per_run.live)])
        print(table(["bytes per run", "files", "live"], rows))
        print()

        # 2. The history.
        now = datetime.now(UTC)
        started = time.perf_counter()
        failures = clone_history(home, templates, args.days, args.runs_per_day, args.failed_share, now)
        clones = args.days * args.runs_per_day
        print(
            f"history: {args.days} days x {args.runs_per_day} runs/day = {clones:,} cloned runs "
            f"({failures} FAILURE) built in {time.perf_counter() - started:.0f} s"
        )

        # 3. Three ways.
        unpruned = home_size(home)
        alone = work / "home_delete_run_alone"
        shutil.copytree(home, alone)
        policy = RetentionPolicy()
        with dg.DagsterInstance.from_config(str(alone)) as instance:
            started = time.perf_counter()
            deleted_alone = 0
            for statuses, cutoff in (
                ([dg.DagsterRunStatus.SUCCESS], now - timedelta(days=policy.days)),
                ([dg.DagsterRunStatus.FAILURE], now - timedelta(days=policy.failed_days)),
            ):
                filters = dg.RunsFilter(job_name="snapshot_job", statuses=statuses, created_before=cutoff)
                while records := instance.get_run_records(filters=filters, limit=500, ascending=True):
                    for record in records:
                        instance.delete_run(record.dagster_run.run_id)
                        deleted_alone += 1
            alone_seconds = time.perf_counter() - started
        alone_size = home_size(alone)
        shutil.rmtree(alone)

        maintenance_job = build_definitions().resolve_job_def("maintenance_job")  # default ages unless set
        with dg.DagsterInstance.from_config(str(home)) as instance:
            started = time.perf_counter()
            result = maintenance_job.execute_in_process(instance=instance)
            prune_seconds = time.perf_counter() - started
            [output] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
            metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
            kept = metadata["runs_kept"]
        pruned = home_size(home)
        total_runs = clones + n + 1
        print(
            table(
                ["DAGSTER_HOME after the history", "runs", "files MB", "live MB", "seconds"],
                [
                    ["no pruning", fmt(total_runs), f"{unpruned.files / MB:,.1f}", f"{unpruned.live / MB:,.1f}", "-"],
                    [
                        "instance.delete_run alone (same runs)",
                        fmt(total_runs - deleted_alone),
                        f"{alone_size.files / MB:,.1f}",
                        f"{alone_size.live / MB:,.1f}",
                        f"{alone_seconds:.0f}",
                    ],
                    [
                        f"maintenance_job ({policy.days:g} d / {policy.failed_days:g} d)",
                        fmt(kept),
                        f"{pruned.files / MB:,.1f}",
                        f"{pruned.live / MB:,.1f}",
                        f"{prune_seconds:.0f}",
                    ],
                ],
            )
        )
        deleted = metadata["runs_deleted"]
        per_deleted, per_alone = prune_seconds / max(deleted, 1), alone_seconds / max(deleted_alone, 1)
        print(
            f"maintenance_job: {deleted:,} runs deleted {metadata['runs_deleted_by_status']}, {per_deleted:.2f} s "
            f"per run (delete_run alone {per_alone:.2f} s): a day of 1,440 runs takes {per_deleted * 24:.0f} min "
            f"to prune; {load()}"
        )
        print()
        year = 1440 * 365
        kept_at_full_rate = 1440 * policy.days + args.failed_share * 1440 * (policy.failed_days - policy.days)
        print(
            table(
                ["projected at 1,440 runs/day", "runs", "files GB", "live GB"],
                [
                    [
                        "one day",
                        fmt(1440),
                        f"{per_run.files * 1440 / MB / 1024:,.2f}",
                        f"{per_run.live * 1440 / MB / 1024:,.2f}",
                    ],
                    [
                        "one year without pruning",
                        fmt(year),
                        f"{per_run.files * year / MB / 1024:,.1f}",
                        f"{per_run.live * year / MB / 1024:,.1f}",
                    ],
                    [
                        "any time with maintenance_job (bound)",
                        fmt(kept_at_full_rate),
                        f"{per_run.files * kept_at_full_rate / MB / 1024:,.1f}",
                        f"{per_run.live * kept_at_full_rate / MB / 1024:,.1f}",
                    ],
                ],
            )
        )
        print(
            "(the bound: runs kept x bytes per run; index.db and runs.db keep their largest size as free pages, "
            "reused by later runs, so the files stop growing once a full retention window is stored)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
