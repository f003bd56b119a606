"""The Parquet side of a replay: re-write each affected run's fact files from SQL, after SQL has committed.

Why this way (the contract: SQL first, then files; re-writing a run's file replaces it, never adds a second):

- While a replayed run's rows commit, the same transaction clears that run's ``snapshot_run.parquet_written_at``.
  Its files are then re-written from SQL (all rows of the run, the replayed ones included) and the flag is put back
  to its old value, so ``snapshot_run`` and its file are unchanged. A replay that dies between the two leaves the
  flag clear: the next snapshot run's ``export_missing_parquet`` writes that run's files, as after any crash.
- A run whose flag was already clear (its export never completed) is left to that same recovery.
- A closed day that compaction merged into ``compacted-*`` files (a file in the date folder not named like a
  snapshot id) would hold the run's old rows next to a re-written per-run file. There the per-run file is written
  and the partition compacted again at once (``compaction.compact_partition``: a per-run file replaces its run's
  rows in the compacted files), under the writer lock the replay holds. If that compaction does not complete, the
  per-run file is removed again (unless it existed before) and the partition is reported as deferred: its Parquet
  lacks the replayed rows until the day is re-exported; SQL has them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime

import pyarrow.fs as pafs
import sqlalchemy as sa

from pipelines.storage import schema
from pipelines.storage.compaction import compact_partition
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse

log = logging.getLogger(__name__)

RUN_FILE = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]+\.parquet")  # <snapshot_id>.parquet (see ingest.new_snapshot_id)


@dataclass
class _Pending:
    day: date
    written_at: datetime | None
    tables: set[str] = field(default_factory=set)


@dataclass
class ParquetRefresh:
    """Collects the runs and dimensions a batch of replays touched; ``flush`` writes their files."""

    warehouse: Warehouse
    parquet: ParquetStore
    files: list[str] = field(default_factory=list)
    recompacted: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)
    left_to_export: set[str] = field(default_factory=set)
    _runs: dict[str, _Pending] = field(default_factory=dict)
    _dimensions: set[str] = field(default_factory=set)

    def claim(self, conn: sa.Connection, snapshot_id: str, day: date, tables: set[str], dimensions: set[str]) -> None:
        """In the transaction that lands a run's rows: mark its export pending (see the module docstring)."""
        self._dimensions |= dimensions
        if not tables:
            return
        if snapshot_id in self._runs:
            self._runs[snapshot_id].tables |= tables
            return
        if snapshot_id in self.left_to_export:
            return
        runs = schema.TABLES["snapshot_run"]
        row = conn.execute(
            sa.select(runs.c.parquet_written_at).where(runs.c.snapshot_id == snapshot_id)
        ).one_or_none()
        if row is not None and row.parquet_written_at is None:
            self.left_to_export.add(snapshot_id)  # the next snapshot run exports it whole
            return
        if row is not None:
            conn.execute(sa.update(runs).where(runs.c.snapshot_id == snapshot_id).values(parquet_written_at=None))
        self._runs[snapshot_id] = _Pending(day, row.parquet_written_at if row is not None else None, set(tables))

    def flush(self) -> None:
        """After the commits: each pending run's touched fact files from SQL, then the touched dimensions."""
        runs = schema.TABLES["snapshot_run"]
        for snapshot_id, pending in sorted(self._runs.items()):
            for table in sorted(pending.tables):
                self._write_fact(table, snapshot_id, pending.day)
            if pending.written_at is not None:
                with self.warehouse.begin() as conn:
                    conn.execute(
                        sa.update(runs)
                        .where(runs.c.snapshot_id == snapshot_id)
                        .values(parquet_written_at=pending.written_at)
                    )
        with self.warehouse.engine.connect() as conn:
            for name in sorted(self._dimensions):
                self.files.append(self.parquet.write_dimension(name, self.warehouse.read_table(conn, name)))
        self._runs.clear()
        self._dimensions.clear()

    def _write_fact(self, table: str, snapshot_id: str, day: date) -> None:
        with self.warehouse.engine.connect() as conn:
            rows = self.warehouse.read_table(conn, table, {"snapshot_id": snapshot_id})
        partition = f"{table}/date={day.isoformat()}"
        if not self.compacted(table, day):
            self.files.append(self.parquet.write_fact(table, snapshot_id, day, rows))
            return
        if not self.parquet.local:  # compaction exists only for a local folder: a file not ours, left alone
            log.error("replay: %s holds files not named like a run; its Parquet lacks the replayed rows", partition)
            self.deferred.add(partition)
            return
        path = os.path.join(self.parquet.root, table, f"date={day.isoformat()}", f"{snapshot_id}.parquet")
        existed = os.path.exists(path)
        self.parquet.write_fact(table, snapshot_id, day, rows)
        result = compact_partition(self.parquet, table, day)
        if result.status == "compacted":
            self.recompacted.add(partition)
            return
        log.error("replay: %s not re-compacted (%s %s); its Parquet lacks the replayed rows", partition,
                  result.status, result.detail)  # fmt: skip
        if not existed:
            os.remove(path)
        self.deferred.add(partition)

    def compacted(self, table: str, day: date) -> bool:
        """Whether compaction merged this partition: a data file there that is not named like a snapshot id."""
        folder = f"{self.parquet.root}/{table}/date={day.isoformat()}"
        if self.parquet.fs.get_file_info(folder).type != pafs.FileType.Directory:
            return False
        return any(
            info.type == pafs.FileType.File
            and info.base_name.endswith(".parquet")
            and not info.base_name.startswith(".")
            and not RUN_FILE.fullmatch(info.base_name)
            for info in self.parquet.fs.get_file_info(pafs.FileSelector(folder))
        )
