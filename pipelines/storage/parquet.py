"""Parquet files in the contract's layout, written atomically so that a reader never sees half a file.

Locally a file is written under a hidden temporary name (never ending in ``.parquet``, so globs skip it),
fsynced, then renamed into place with ``os.replace``; on an object store the upload itself appears whole when it
completes. Every value that becomes part of a path goes through ``safe_path_component``.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.storage.dirswap import fsync_directory
from pipelines.storage.schema import ARROW_SCHEMAS, DIMENSION_TABLES, FACT_TABLES

_SAFE = re.compile(r"[A-Za-z0-9._=-]{1,200}")
_TEMPORARY = re.compile(r"^\..+\.tmp-[0-9a-f]{32}$")


def safe_path_component(value: str) -> str:
    """``value`` unchanged if it is safe as one folder or file name, else ValueError.

    Only ``[A-Za-z0-9._=-]`` is allowed, and no leading dot (no ``.``/``..``, no hidden or temporary names), so
    no separator, traversal, NUL, control character, quote or SQL fragment can reach a path.
    """
    if not isinstance(value, str) or not _SAFE.fullmatch(value) or value.startswith("."):
        raise ValueError(f"unsafe path component: {value!r}")
    return value


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in its order and types (an all-null column keeps its type)."""
    missing = [name for name in schema.names if name not in table.column_names]
    extra = [name for name in table.column_names if name not in schema.names]
    if missing or extra:
        raise ValueError(f"columns differ from the schema: missing {missing}, unexpected {extra}")
    return pa.table([table.column(field.name).cast(field.type) for field in schema], schema=schema)


def _partition(day: date) -> str:
    if isinstance(day, datetime):  # a datetime is a date too: take its UTC calendar day
        day = day.astimezone(UTC).date()
    return f"date={day.isoformat()}"


def partition_parts(view: str, day: date) -> list[str]:
    """A daily reporting partition's path below the Parquet root, as components: ``<view>``, ``date=YYYY-MM-DD``,
    ``part.parquet`` (written by ``ParquetStore.write_partition``, found by its readers)."""
    return [safe_path_component(view), _partition(day), "part.parquet"]


class ParquetStore:
    """Parquet files under ``root``: a local folder or a URI that ``pyarrow.fs.FileSystem.from_uri`` opens."""

    def __init__(self, root: str) -> None:
        if "://" in root:
            self.fs, path = pafs.FileSystem.from_uri(root)
        else:
            self.fs, path = pafs.LocalFileSystem(), os.path.abspath(root)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.root = path.rstrip("/")

    def write_fact(self, table: str, snapshot_id: str, day: date, arrow_table: pa.Table) -> str:
        """``root/<table>/date=YYYY-MM-DD/<snapshot_id>.parquet``: one file per fact table per run."""
        if table not in FACT_TABLES:
            raise ValueError(f"not a fact table: {table!r}")
        name = f"{safe_path_component(snapshot_id)}.parquet"
        return self._write([table, _partition(day), name], conform(arrow_table, ARROW_SCHEMAS[table]))

    @contextmanager
    def fact_writer(self, table: str, snapshot_id: str, day: date) -> Iterator[FactWriter]:
        """The same file as ``write_fact``, written a batch at a time (``writer.write(batch)``), so that a run's
        hundreds of thousands of events never sit in memory at once. Nothing appears until the block ends without
        an error (then the file is moved into place whole); a file with no rows is not written at all."""
        if table not in FACT_TABLES:
            raise ValueError(f"not a fact table: {table!r}")
        parts = [table, _partition(day), f"{safe_path_component(snapshot_id)}.parquet"]
        folder = "/".join([self.root, *parts[:-1]])
        final = f"{folder}/{parts[-1]}"
        writer = FactWriter(self, ARROW_SCHEMAS[table], folder, final, parts[-1])
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.close()

    def write_dimension(self, table: str, arrow_table: pa.Table) -> str:
        """``root/<table>/current.parquet``, replaced whole each run."""
        if table not in DIMENSION_TABLES:
            raise ValueError(f"not a dimension table: {table!r}")
        return self._write([table, "current.parquet"], conform(arrow_table, ARROW_SCHEMAS[table]))

    def write_partition(self, view: str, day: date, arrow_table: pa.Table, schema: pa.Schema | None = None) -> str:
        """``root/<view>/date=YYYY-MM-DD/part.parquet`` for a daily reporting partition."""
        if schema is not None:
            arrow_table = conform(arrow_table, schema)
        return self._write(partition_parts(view, day), arrow_table)

    def fact_files(self, table: str) -> list[str]:
        """The data files of ``table`` (any layout below its folder), sorted; temporaries excluded."""
        folder = f"{self.root}/{safe_path_component(table)}"
        if self.fs.get_file_info(folder).type != pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(folder, recursive=True))
        return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet"))

    def remove_temporaries(self, older_than_s: float = 600.0, tables: Iterable[str] | None = None) -> int:
        """Delete temporary files left by a crashed write; returns how many.

        Only those older than ``older_than_s``, so that a write in progress in another process is left alone;
        ``tables`` limits the sweep to those tables' folders (a writer that owns them may sweep with age 0).
        Object stores have none: an upload appears whole or not at all.
        """
        if not self.local or not os.path.isdir(self.root):
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        roots = [self.root] if tables is None else [f"{self.root}/{safe_path_component(t)}" for t in tables]
        for folder, _dirs, files in (entry for root in roots for entry in os.walk(root)):
            for name in files:
                path = os.path.join(folder, name)
                if _TEMPORARY.match(name) and os.path.getmtime(path) <= cutoff:
                    os.remove(path)
                    removed += 1
        return removed

    def _write(self, parts: list[str], table: pa.Table) -> str:
        folder = "/".join([self.root, *parts[:-1]])
        final = f"{folder}/{parts[-1]}"
        if not self.local:
            self.fs.create_dir(folder, recursive=True)
            pq.write_table(table, final, filesystem=self.fs)
            return final
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, f".{parts[-1]}.tmp-{uuid.uuid4().hex}")
        try:
            with open(temporary, "wb") as file:
                pq.write_table(table, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, final)
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise
        fsync_directory(folder)
        return final


class FactWriter:
    """One fact file written incrementally (``ParquetStore.fact_writer``): a row group per ``write``; locally under
    a temporary name, fsynced and renamed on ``close``; for an object store built in memory (compressed) and
    uploaded on ``close``."""

    def __init__(self, store: ParquetStore, schema: pa.Schema, folder: str, final: str, name: str) -> None:
        self.store, self.schema, self.folder, self.final, self.name = store, schema, folder, final, name
        self.rows = 0
        self.path: str | None = None  # the final path once written
        self._file: Any = None
        self._writer: pq.ParquetWriter | None = None
        self._temporary: str | None = None

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = conform(table, self.schema)
        if self._writer is None:
            self._open()
        assert self._writer is not None
        self._writer.write_table(table)
        self.rows += table.num_rows

    def _open(self) -> None:
        if self.store.local:
            os.makedirs(self.folder, exist_ok=True)
            self._temporary = os.path.join(self.folder, f".{self.name}.tmp-{uuid.uuid4().hex}")
            self._file = open(self._temporary, "wb")  # noqa: SIM115 (closed in close/abort)
        else:  # compressed Parquet in memory, one upload on close: a partial upload must never become an object
            self._file = pa.BufferOutputStream()
        self._writer = pq.ParquetWriter(self._file, self.schema)

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        if self.store.local:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            assert self._temporary is not None
            os.replace(self._temporary, self.final)
            fsync_directory(self.folder)
        else:
            self.store.fs.create_dir(self.folder, recursive=True)
            with self.store.fs.open_output_stream(self.final) as stream:
                stream.write(self._file.getvalue())
        self._writer = None
        self.path = self.final

    def abort(self) -> None:
        """Drop what was written: locally the temporary file goes; an unfinished upload is abandoned."""
        if self._writer is None:
            return
        try:
            self._writer.close()
            self._file.close()
        finally:
            self._writer = None
            if self._temporary is not None and os.path.exists(self._temporary):
                os.remove(self._temporary)
