"""ParquetStore.fact_writer: a run's fact file written a batch at a time, appearing whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipelines.storage.parquet import ParquetStore
from pipelines.storage.schema import ARROW_SCHEMAS
from tests.storage.test_parquet import DAY, _events


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_batches_become_one_file_that_appears_only_when_the_block_ends(tmp_path):
    store = ParquetStore(str(tmp_path))
    with store.fact_writer("chat_event", "snap-1", DAY) as writer:
        writer.write(_events(3, "snap-1"))
        writer.write(_events(0, "snap-1"))  # an empty batch adds nothing
        writer.write(_events(2, "snap-1"))
        assert not any(name.endswith(".parquet") for name in _files(tmp_path))  # only a hidden temporary so far
    assert writer.rows == 5
    assert _files(tmp_path) == [f"chat_event/date={DAY}/snap-1.parquet"]
    table = pq.read_table(writer.path)
    assert table.num_rows == 5 and table.schema == ARROW_SCHEMAS["chat_event"]


def test_nothing_is_written_without_rows_and_nothing_is_left_after_an_error(tmp_path):
    store = ParquetStore(str(tmp_path))
    with store.fact_writer("chat_event", "snap-1", DAY) as writer:
        writer.write(_events(0, "snap-1"))
    assert writer.path is None and _files(tmp_path) == []
    with pytest.raises(RuntimeError), store.fact_writer("chat_event", "snap-2", DAY) as writer:
        writer.write(_events(2, "snap-2"))
        raise RuntimeError("the run died mid-way")
    assert not any(Path(tmp_path).rglob("*.parquet")) and not [p for p in Path(tmp_path).rglob("*") if p.is_file()]


def test_an_object_store_gets_one_whole_upload(tmp_path):
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    store = ParquetStore(str(tmp_path))
    store.fs, store.local, store.root = fs, False, "bucket"
    with store.fact_writer("chat_event", "snap-1", DAY) as writer:
        writer.write(_events(4, "snap-1"))
        assert _files(tmp_path) == []  # built in memory until the block ends
    assert pq.read_table(f"{tmp_path}/bucket/chat_event/date={DAY}/snap-1.parquet").num_rows == 4


def test_only_fact_tables(tmp_path):
    with pytest.raises(ValueError), ParquetStore(str(tmp_path)).fact_writer("agent", "snap-1", DAY):
        pass
