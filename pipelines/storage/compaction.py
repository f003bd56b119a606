"""Compaction of closed days: a fact table's per-run files of one UTC day rewritten as one file (or a few).

Why: a snapshot every minute writes 1,440 files per fact table per day; a query over a month then opens 43,200
small files per table, and each pays its own open, footer read and planning. One sorted file per day reads many
times faster (``bench/compaction.py``).

How, for one partition ``PARQUET_ROOT/<table>/date=D`` (local filesystem only):

1. DuckDB reads the partition's files and streams them, sorted by ``SORT_KEYS`` (it spills to disk beyond its
   memory limit), to ``compacted-<generation>-NNNN.parquet`` files of at most ``MAX_ROWS_PER_FILE`` rows, written
   with the table's explicit Arrow schema into ``PARQUET_ROOT/.compaction/staging/<table>/date=D/staged``:
   outside the table's folder (DuckDB's ``<table>/*/*.parquet`` never matches it) and hidden (``pyarrow.dataset``
   skips names starting with a dot), but on the same filesystem, so that it can be renamed into place.
2. Verification: per ``snapshot_id``, the row count and a content fingerprint (the sum of every row's hash) of
   the new files equal those of the old files, and the new files have exactly the table's Arrow schema;
   otherwise nothing is swapped, the old files stay, and the result says ``mismatch``.
3. A ``verified`` marker is written, then the staged folder and the live one are swapped in ONE step
   (``dirswap.swap_directory``: ``renameat2(RENAME_EXCHANGE)``; two renames where unavailable), so that a reader
   listing the day sees all the old files or all the new ones, never both and never neither. A query whose
   listing or opening straddles the swap gets an error to retry, never a wrong answer: a generation's file
   names are never reused, so an old name looked up after the swap is "not found" (DuckDB's glob reads the
   folder, then stats each name by path: straddling the swap it can say "No files found").
4. The retired folder moves to ``PARQUET_ROOT/.compaction/retired`` and is deleted ``RETIRED_GRACE_S`` later,
   by the next call (``purge_retired``): a reader that opened the day's folder just before the swap can still
   finish listing it.

A crash at any step leaves the old files or the new ones in place; the next call's ``recover_staging`` deletes
the leftovers (and, after the two-rename fallback was interrupted between its renames, moves the verified new
folder into place). Compaction is idempotent: a day without per-run files is left alone.

Per-run files arriving later: ``SnapshotRunner.export_missing_parquet`` writes ``<snapshot_id>.parquet`` for a
committed run whose export a crash interrupted. ``compact_closed_days`` does not compact a day that such a run
(``snapshot_run.parquet_written_at`` null) may still write into (the UTC day of its ``started_at`` and the next,
since its events go under their ingestion day), so a late file cannot duplicate compacted rows. If one does land
in a compacted day anyway, it sits beside the compacted files (names never collide: snapshot ids start with a
digit, compacted files with ``compacted-``), and the next compaction merges it, its rows replacing any rows of
the same snapshot in the compacted files, as re-writing a run's file replaces it.

The caller must hold the warehouse writer lock (``pipelines.storage.lock``): no run writes Parquet files while a
partition is rebuilt, and two compactions never run at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from pipelines.clock import Clock, system_clock
from pipelines.storage import schema
from pipelines.storage.dirswap import SwapMode, fsync_directory, remove_tree, swap_directory
from pipelines.storage.parquet import _TEMPORARY, ParquetStore, conform, safe_path_component
from pipelines.storage.warehouse import Warehouse

log = logging.getLogger(__name__)

STAGING = ".compaction"  # hidden, beside the tables: staging/<table>/date=D/ and retired/
RETIRED_GRACE_S = 60.0  # a retired day outlives its swap this long (see ``purge_retired``)
COMPACTED_PREFIX = "compacted-"
MAX_ROWS_PER_FILE = 8_000_000  # about 1 GB of chat_event; a busier day gets several files
ROW_GROUP_ROWS = 122_880  # DuckDB's own row group size: the unit its readers parallelize over
COMPRESSION = "zstd"  # read by DuckDB, pyarrow, pandas and Spark alike; about a third smaller than snappy here
DUCKDB_MEMORY_LIMIT = "1GB"  # beyond it the sort spills into the staging folder
DUCKDB_THREADS = 2

SORT_KEYS: dict[str, tuple[str, ...]] = {
    "chat_event": ("chat_id", "event_id"),
    "agent_state_snapshot": ("snapshot_at", "agent_id", "snapshot_id"),
    "session_availability_snapshot": ("snapshot_at", "agent_id", "snapshot_id"),
    "chat_slots_snapshot": ("snapshot_at", "snapshot_id"),
    "snapshot_run": ("started_at", "snapshot_id"),
}

Status = Literal["compacted", "unchanged", "pending_export", "mismatch", "failed"]


@dataclass(frozen=True)
class CompactionResult:
    """What compaction did to one table's day: ``compacted``; ``unchanged`` (no per-run files: already compacted);
    ``pending_export`` (skipped: an unexported run may still write into it); ``mismatch`` (verification failed,
    or the folder holds other files: old files kept; ``detail`` says why); ``failed`` (an old file could not be
    read: old files kept, ``detail`` has the error). The last two need an operator."""

    table: str
    day: date
    status: Status
    files_before: int
    files_after: int
    rows: int
    bytes_before: int
    bytes_after: int
    swap: SwapMode | None = None
    detail: str = ""


@dataclass
class _Listing:
    per_run: list[str] = field(default_factory=list)  # file names
    compacted: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # anything else but a crashed write's temporary
    bytes: int = 0

    @property
    def names(self) -> list[str]:
        return sorted(self.per_run + self.compacted)


def _footer_rows(path: str) -> int:
    """Rows a Parquet file's footer declares; 0 for a file that cannot be read (reported as ``failed``)."""
    try:
        return pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError):
        return 0


class _Mismatch(Exception):
    """Verification failed: the new files do not hold exactly the old rows."""


def compact_closed_days(
    parquet: ParquetStore,
    warehouse: Warehouse | None,
    *,
    clock: Clock = system_clock,
    tables: Iterable[str] = schema.FACT_TABLES,
    max_rows_per_file: int = MAX_ROWS_PER_FILE,
    retired_grace_s: float = RETIRED_GRACE_S,
) -> list[CompactionResult]:
    """Compact every closed UTC day (before ``clock()``'s day) of each fact table; one result per table and day.

    The caller holds the warehouse writer lock. ``warehouse`` None skips the unexported-run guard (a Parquet store
    without a warehouse, e.g. a benchmark). On an object store nothing is done (logged): there is no atomic
    folder swap there; a table format (Iceberg, Delta) would be the way.
    """
    if not parquet.local:
        log.warning("compaction skipped: PARQUET_ROOT %s is not a local folder", parquet.root)
        return []
    recover_staging(parquet)
    purge_retired(parquet, retired_grace_s)
    today = clock().astimezone(UTC).date()
    blocked = pending_export_days(warehouse) if warehouse is not None else set()
    results: list[CompactionResult] = []
    for table in tables:
        for day in partition_days(parquet, table):
            if day >= today:
                continue
            if day in blocked:
                live = _live(parquet, table, day)
                detail = "a run of this day or the day before is not exported yet"
                results.append(_unchanged(table, day, _list_partition(live), "pending_export", detail, live))
                continue
            results.append(compact_partition(parquet, table, day, max_rows_per_file=max_rows_per_file))
    purge_retired(parquet, retired_grace_s)
    return results


def compact_partition(
    parquet: ParquetStore,
    table: str,
    day: date,
    *,
    max_rows_per_file: int = MAX_ROWS_PER_FILE,
    force: bool = False,
    swap_mode: SwapMode | None = None,
) -> CompactionResult:
    """Rewrite ``PARQUET_ROOT/<table>/date=<day>`` as compacted files, atomically (see the module's docstring).

    ``force`` rewrites a day even when it has no per-run files (e.g. after changing ``max_rows_per_file``);
    ``swap_mode`` "rename" forces the non-atomic fallback. Does not check that the day is closed: the caller
    (``compact_closed_days``) does. The caller holds the warehouse writer lock.
    """
    if table not in schema.FACT_TABLES:
        raise ValueError(f"not a fact table: {table!r}")
    if not parquet.local:
        raise ValueError("compaction needs a local PARQUET_ROOT (an object store has no atomic folder swap)")
    if max_rows_per_file < 1:
        raise ValueError("max_rows_per_file must be at least 1")
    live = _live(parquet, table, day)
    before = _list_partition(live)
    if not before.per_run and not (force and before.compacted):
        return _unchanged(table, day, before, "unchanged", folder=live)
    if before.foreign:  # the swap would retire them with the old files: an operator decides instead
        detail = f"entries that are not Parquet files of this table: {sorted(before.foreign)[:5]}"
        log.error("compaction of %s %s skipped: %s", table, day, detail)
        return _unchanged(table, day, before, "mismatch", detail, live)
    stage = os.path.join(parquet.root, STAGING, "staging", table, f"date={day.isoformat()}")
    remove_tree(stage)  # a leftover of an aborted attempt at this very day
    staged = os.path.join(stage, "staged")
    os.makedirs(staged)
    generation = f"{COMPACTED_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    with _duckdb(os.path.join(stage, "spill")) as con:
        source = _source_sql(live, before)
        try:
            columns = _source_columns(con, source, schema.ARROW_SCHEMAS[table])
            written = _write_sorted(con, source, table, columns, staged, generation, max_rows_per_file)
            rows = _verify(con, table, source, columns, written)
            if _list_partition(live).names != before.names:
                raise _Mismatch("the partition changed during compaction: is the writer lock held?")
        except (_Mismatch, duckdb.Error, pa.ArrowException) as exc:  # e.g. a corrupt per-run file: "failed"
            remove_tree(stage)
            log.error("compaction of %s %s aborted, old files kept: %s", table, day, exc)
            status: Status = "mismatch" if isinstance(exc, _Mismatch) else "failed"
            return _unchanged(table, day, before, status, f"{type(exc).__name__}: {exc}", live)
    _mark_verified(stage)
    retired = os.path.join(stage, "retired")
    mode = swap_directory(staged, live, retired, mode=swap_mode)
    _retire(parquet, retired, f"{table}.date={day.isoformat()}.{generation}")
    remove_tree(stage)
    _remove_empty_staging(parquet)
    after = _list_partition(live)
    log.info(
        "compacted %s %s: %d files (%d bytes) -> %d files (%d bytes), %d rows, swap by %s",
        table, day, len(before.names), before.bytes, len(after.names), after.bytes, rows, mode,
    )  # fmt: skip
    return CompactionResult(
        table, day, "compacted", len(before.names), len(after.names), rows, before.bytes, after.bytes, mode
    )


def recover_staging(parquet: ParquetStore) -> int:
    """Finish or undo what a crashed compaction left in ``PARQUET_ROOT/.compaction``; returns folders cleaned.

    The live partition present means the swap either completed or never began: the staging folder is only
    leftovers. The live partition absent means the two-rename fallback stopped between its renames: the verified
    new folder goes into place (or, without one, the retired old folder goes back).
    """
    base = os.path.join(parquet.root, STAGING, "staging")
    if not os.path.isdir(base):
        return 0
    cleaned = 0
    for table in sorted(os.listdir(base)):
        table_stage = os.path.join(base, table)
        for entry in sorted(os.listdir(table_stage)):
            stage = os.path.join(table_stage, entry)
            live = os.path.join(parquet.root, table, entry)
            if not os.path.lexists(live):
                staged, retired = os.path.join(stage, "staged"), os.path.join(stage, "retired")
                if os.path.exists(os.path.join(stage, "verified")) and os.path.isdir(staged):
                    os.rename(staged, live)
                    log.warning("compaction recovery: moved the verified compacted files into %s", live)
                elif os.path.isdir(retired):
                    os.rename(retired, live)
                    log.warning("compaction recovery: moved the previous files back into %s", live)
                fsync_directory(os.path.dirname(live))
            remove_tree(stage)
            cleaned += 1
    _remove_empty_staging(parquet)
    return cleaned


def purge_retired(parquet: ParquetStore, older_than_s: float = RETIRED_GRACE_S) -> int:
    """Delete the replaced days' old files once they have been retired for ``older_than_s``; returns how many.

    Why not at once: a reader that opened the day's folder just before the swap may still be reading its
    entries; emptying that folder under it would make it see no files at all. Files it has open stay readable
    anyway (Linux keeps an unlinked file until its last descriptor closes).
    """
    base = os.path.join(parquet.root, STAGING, "retired")
    if not os.path.isdir(base):
        return 0
    cutoff = time.time() - older_than_s
    purged = 0
    for entry in os.scandir(base):
        if entry.stat(follow_symlinks=False).st_mtime <= cutoff:
            remove_tree(entry.path)
            purged += 1
    _remove_empty_staging(parquet)
    return purged


def pending_export_days(warehouse: Warehouse) -> set[date]:
    """UTC days into which an unexported run (``parquet_written_at`` null) may still write files.

    ``export_missing_parquet`` files a run's ``snapshot_run`` row under its start day and its other rows under
    their snapshot or ingestion day, which is the start day or, for a run that crossed midnight, the next one.
    The query scans ``snapshot_run`` (1,440 rows a day), which is cheap.
    """
    runs = schema.TABLES["snapshot_run"]
    with warehouse.engine.connect() as conn:
        started = conn.execute(sa.select(runs.c.started_at).where(runs.c.parquet_written_at.is_(None))).scalars()
        days = {at.astimezone(UTC).date() for at in started if at is not None}
    return days | {day + timedelta(days=1) for day in days}


def partition_days(parquet: ParquetStore, table: str) -> list[date]:
    """The days that have a ``date=YYYY-MM-DD`` folder under ``PARQUET_ROOT/<table>``, in order."""
    folder = os.path.join(parquet.root, safe_path_component(table))
    if not os.path.isdir(folder):
        return []
    days = []
    for entry in os.scandir(folder):
        if entry.is_dir() and entry.name.startswith("date="):
            try:
                days.append(date.fromisoformat(entry.name.removeprefix("date=")))
            except ValueError:
                continue  # not ours: left alone
    return sorted(days)


def is_compacted_file(name: str) -> bool:
    """A compacted file's name (a per-run file is ``<snapshot_id>.parquet``, and snapshot ids start with a digit)."""
    return name.startswith(COMPACTED_PREFIX) and name.endswith(".parquet")


# ------------------------------------------------------------------ steps


def _live(parquet: ParquetStore, table: str, day: date) -> str:
    return os.path.join(parquet.root, safe_path_component(table), f"date={day.isoformat()}")


def _retire(parquet: ParquetStore, folder: str, name: str) -> None:
    """Move a replaced day's old folder to ``retired/``, stamped now, for ``purge_retired`` to delete later."""
    os.utime(folder)
    base = os.path.join(parquet.root, STAGING, "retired")
    os.makedirs(base, exist_ok=True)
    os.rename(folder, os.path.join(base, name))


def _remove_empty_staging(parquet: ParquetStore) -> None:
    """Drop ``.compaction`` and its subfolders once nothing is staged or retired in them."""
    base = os.path.join(parquet.root, STAGING)
    staging = os.path.join(base, "staging")
    tables = [os.path.join(staging, name) for name in os.listdir(staging)] if os.path.isdir(staging) else []
    for folder in [*tables, staging, os.path.join(base, "retired"), base]:
        with contextlib.suppress(OSError):  # absent, or not empty: a day is still staged or retired
            os.rmdir(folder)


def _list_partition(folder: str) -> _Listing:
    listing = _Listing()
    if not os.path.isdir(folder):
        return listing
    for entry in os.scandir(folder):
        if _TEMPORARY.match(entry.name):
            continue  # a killed run's leftover (the writer lock is held): retired with the old files
        if not entry.is_file() or not entry.name.endswith(".parquet") or entry.name.startswith("."):
            listing.foreign.append(entry.name)
            continue
        (listing.compacted if is_compacted_file(entry.name) else listing.per_run).append(entry.name)
        listing.bytes += entry.stat().st_size
    return listing


def _unchanged(
    table: str, day: date, listing: _Listing, status: Status, detail: str = "", folder: str | None = None
) -> CompactionResult:
    files = len(listing.names)
    rows = sum(_footer_rows(os.path.join(folder, name)) for name in listing.names) if folder else 0
    return CompactionResult(table, day, status, files, files, rows, listing.bytes, listing.bytes, None, detail)


@contextmanager
def _duckdb(spill: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB in UTC, bounded in memory and threads, spilling into the staging folder."""
    config = {"threads": DUCKDB_THREADS, "memory_limit": DUCKDB_MEMORY_LIMIT, "temp_directory": spill}
    con = duckdb.connect(config=config)
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _read(paths: Sequence[str]) -> str:
    files = ", ".join(_literal(path) for path in paths)
    return f"SELECT * FROM read_parquet([{files}], union_by_name = true, hive_partitioning = false)"


def _source_sql(live: str, listing: _Listing) -> str:
    """The day's rows: every per-run file, plus the compacted files' rows of snapshots that no per-run file
    rewrote (a re-written run's file replaces its rows)."""
    parts = []
    if listing.per_run:
        parts.append(_read([os.path.join(live, name) for name in sorted(listing.per_run)]))
    if listing.compacted:
        rewritten = [name.removesuffix(".parquet") for name in listing.per_run]
        query = _read([os.path.join(live, name) for name in sorted(listing.compacted)])
        if rewritten:
            ids = ", ".join(_literal(snapshot_id) for snapshot_id in rewritten)
            query += f" WHERE snapshot_id IS NULL OR snapshot_id NOT IN ({ids})"
        parts.append(query)
    return " UNION ALL BY NAME ".join(f"({part})" for part in parts)


def _source_columns(con: duckdb.DuckDBPyConnection, source: str, arrow_schema: pa.Schema) -> list[str]:
    """The schema's columns that the old files have (older files may lack a column added since)."""
    present = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM ({source})").fetchall()]
    unknown = sorted(set(present) - set(arrow_schema.names))
    if unknown:
        raise _Mismatch(f"columns not in the table's schema: {unknown}")
    return [name for name in arrow_schema.names if name in present]


def _write_sorted(
    con: duckdb.DuckDBPyConnection,
    source: str,
    table: str,
    columns: list[str],
    folder: str,
    generation: str,
    max_rows_per_file: int,
) -> list[str]:
    """Stream the sorted rows into files of at most ``max_rows_per_file`` rows, with the table's Arrow schema,
    fsynced; returns their paths (at least one file, even for no rows, so that the day keeps its schema)."""
    arrow_schema = schema.ARROW_SCHEMAS[table]
    order = ", ".join(_ident(key) for key in SORT_KEYS[table])
    query = f"SELECT {', '.join(_ident(c) for c in columns)} FROM ({source}) ORDER BY {order}"
    relation = con.sql(query)
    to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader  # duckdb 2 / 1.x
    reader = to_reader(ROW_GROUP_ROWS)
    paths: list[str] = []
    output = _FileSeries(folder, generation, arrow_schema, paths)
    try:
        for batch in reader:
            rows = pa.Table.from_batches([batch])
            for name in arrow_schema.names:
                if name not in rows.column_names:
                    rows = rows.append_column(name, pa.nulls(rows.num_rows, arrow_schema.field(name).type))
            rows = conform(rows, arrow_schema)
            while rows.num_rows:
                room = max_rows_per_file - output.rows_in_current
                if room == 0:
                    output.next_file()
                    continue
                output.write(rows.slice(0, room))
                rows = rows.slice(room)
        output.close()
    finally:
        output.abort()
    fsync_directory(folder)
    return paths


class _FileSeries:
    """compacted-<generation>-0000.parquet, -0001, ... in one folder; each file fsynced when closed."""

    def __init__(self, folder: str, generation: str, arrow_schema: pa.Schema, paths: list[str]) -> None:
        self.folder, self.generation, self.schema, self.paths = folder, generation, arrow_schema, paths
        self.rows_in_current = 0
        self._file: object | None = None
        self._writer: pq.ParquetWriter | None = None
        self.next_file()

    def next_file(self) -> None:
        self.close()
        path = os.path.join(self.folder, f"{self.generation}-{len(self.paths):04d}.parquet")
        self._file = open(path, "wb")  # noqa: SIM115 (closed in close/abort)
        self._writer = pq.ParquetWriter(self._file, self.schema, compression=COMPRESSION)
        self.paths.append(path)
        self.rows_in_current = 0

    def write(self, rows: pa.Table) -> None:
        assert self._writer is not None
        self._writer.write_table(rows, row_group_size=ROW_GROUP_ROWS)
        self.rows_in_current += rows.num_rows

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._file.flush()  # type: ignore[union-attr]
        os.fsync(self._file.fileno())  # type: ignore[union-attr]
        self._file.close()  # type: ignore[union-attr]
        self._writer = self._file = None

    def abort(self) -> None:
        """Close whatever is open (the staging folder is discarded by the caller on failure)."""
        if self._writer is not None:
            self._writer.close()
            self._file.close()  # type: ignore[union-attr]
            self._writer = self._file = None


def _fingerprint(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str]) -> dict[str | None, tuple]:
    """Per snapshot_id: (rows, sum of row hashes): equal only if the same rows, in any order, are there."""
    row_hash = f"hash({', '.join(_ident(c) for c in columns)})::HUGEINT"
    query = f"SELECT snapshot_id, count(*), sum({row_hash}) FROM ({relation}) GROUP BY snapshot_id"
    return {snapshot_id: (rows, int(total)) for snapshot_id, rows, total in con.execute(query).fetchall()}


def _verify(con: duckdb.DuckDBPyConnection, table: str, source: str, columns: list[str], written: list[str]) -> int:
    """The written files hold exactly the source's rows, with the table's schema; returns the row count."""
    arrow_schema = schema.ARROW_SCHEMAS[table]
    for path in written:
        if not pq.read_schema(path).remove_metadata().equals(arrow_schema):
            raise _Mismatch(f"{os.path.basename(path)} does not have the table's Arrow schema")
    expected = _fingerprint(con, source, columns)
    actual = _fingerprint(con, _read(written), columns)
    if actual != expected:
        lost = sum(n for n, _ in expected.values()) - sum(n for n, _ in actual.values())
        differing = sorted(str(k) for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
        raise _Mismatch(f"new files differ from the old ones ({lost} rows fewer; snapshots {differing[:5]} ...)")
    rows = sum(pq.read_metadata(path).num_rows for path in written)
    if rows != sum(n for n, _ in expected.values()):
        raise _Mismatch(f"the new files' footers count {rows} rows")
    return rows


def _mark_verified(stage: str) -> None:
    """Durably record that the staged folder is complete and checked (recovery may then roll it forward)."""
    marker = os.path.join(stage, "verified")
    with open(marker, "wb") as file:
        os.fsync(file.fileno())
    fsync_directory(stage)
