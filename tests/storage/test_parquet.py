"""Parquet files: the contract's layout, atomic replacement, one explicit schema, readable by DuckDB and pandas."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.storage.parquet import ParquetStore, safe_path_component
from pipelines.storage.schema import ARROW_SCHEMAS, TIMESTAMP_TYPE

DAY = date(2026, 11, 27)
AT = datetime(2026, 11, 27, 4, 53, tzinfo=UTC)


def _events(n: int, snapshot_id: str, text: list[str | None] | None = None) -> pa.Table:
    """chat_event rows as they come from a query: some columns typed only as null."""
    return pa.table(
        {
            "chat_id": ["c1"] * n,
            "event_id": list(range(n)),
            "snapshot_id": [snapshot_id] * n,
            "event_type": ["line"] * n,
            "event_time": pa.array([AT] * n, type=TIMESTAMP_TYPE),
            "source": ["visitor"] * n,
            "by": ["visitor"] * n,
            "state": pa.nulls(n),
            "text": pa.array(text if text is not None else [None] * n),
            "text_length": [5] * n,
            "raw_json": ["{}"] * n,
            "ingested_at": pa.array([AT] * n, type=TIMESTAMP_TYPE),
        }
    )


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_fact_file_lands_at_table_date_snapshot_path_with_no_temporary_left(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    path = store.write_fact("chat_event", "20261127T045300Z-3f9a1c2e", DAY, _events(3, "s"))
    assert path == str(tmp_path / "chat_event" / "date=2026-11-27" / "20261127T045300Z-3f9a1c2e.parquet")
    assert _all_files(tmp_path) == ["chat_event/date=2026-11-27/20261127T045300Z-3f9a1c2e.parquet"]


def test_rewriting_a_snapshot_replaces_its_file_instead_of_adding_one(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    store.write_fact("chat_event", "s1", DAY, _events(3, "s1"))
    path = store.write_fact("chat_event", "s1", DAY, _events(7, "s1"))
    assert store.fact_files("chat_event") == [path]
    assert pq.read_table(path).num_rows == 7


def test_an_all_null_column_keeps_its_declared_type(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    path = store.write_fact("chat_event", "s1", DAY, _events(2, "s1"))
    schema = pq.read_schema(path)
    assert schema.field("text").type == pa.string()
    assert schema.field("state").type == pa.string()
    assert pq.read_table(path).schema.equals(ARROW_SCHEMAS["chat_event"])


def test_columns_that_differ_from_the_schema_are_refused(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    with pytest.raises(ValueError, match="missing"):
        store.write_fact("chat_event", "s1", DAY, _events(1, "s1").drop_columns(["text"]))
    with pytest.raises(ValueError, match="not a fact table"):
        store.write_fact("agent", "s1", DAY, _events(1, "s1"))
    assert _all_files(tmp_path) == []


def test_duckdb_reads_a_fact_table_whole_with_hive_partitions(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    store.write_fact("chat_event", "s1", DAY, _events(2, "s1", ["hello", None]))
    store.write_fact("chat_event", "s2", date(2026, 11, 28), _events(3, "s2"))
    glob = f"{tmp_path}/chat_event/*/*.parquet"
    rows = duckdb.sql(
        f"SELECT CAST(date AS VARCHAR), count(*), count(text) FROM read_parquet('{glob}', hive_partitioning=true, "
        "union_by_name=true) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert rows == [("2026-11-27", 2, 1), ("2026-11-28", 3, 0)]


def test_pandas_reads_dimension_files_with_utc_timestamps(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    skills = pa.table({"skill_id": ["1"], "skill_name": [None], "first_seen_at": [AT], "last_seen_at": [AT]})
    path = store.write_dimension("skill", skills)
    assert path == str(tmp_path / "skill" / "current.parquet")
    frame = pd.read_parquet(path)
    assert frame["first_seen_at"].iloc[0] == pd.Timestamp(AT)
    assert str(frame["first_seen_at"].dt.tz) == "UTC"


def test_reporting_partitions_use_the_given_schema(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    schema = pa.schema([("agent_id", pa.string()), ("seconds", pa.float64())])
    path = store.write_partition("agent_time_in_state_daily", DAY, pa.table({"seconds": [None], "agent_id": ["7"]}),
                                 schema)  # fmt: skip
    assert path.endswith("agent_time_in_state_daily/date=2026-11-27/part.parquet")
    assert pq.read_schema(path).equals(schema)


def test_refused_rows_leave_the_previous_file_in_place(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    store.write_fact("chat_event", "s1", DAY, _events(2, "s1"))
    broken = _events(1, "s1").set_column(1, "event_id", pa.array(["not a number"]))
    with pytest.raises(pa.ArrowInvalid):
        store.write_fact("chat_event", "s1", DAY, broken)
    assert _all_files(tmp_path) == ["chat_event/date=2026-11-27/s1.parquet"]
    assert pq.read_table(tmp_path / "chat_event/date=2026-11-27/s1.parquet").num_rows == 2


def test_a_write_that_fails_at_the_rename_removes_its_temporary(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    (tmp_path / "chat_event" / "date=2026-11-27" / "s1.parquet").mkdir(parents=True)  # the rename target is taken
    with pytest.raises(OSError):
        store.write_fact("chat_event", "s1", DAY, _events(2, "s1"))
    assert _all_files(tmp_path) == []


def test_stale_temporaries_from_a_crash_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    folder = tmp_path / "chat_event" / "date=2026-11-27"
    folder.mkdir(parents=True)
    stale = folder / f".s1.parquet.tmp-{'a' * 32}"
    fresh = folder / f".s2.parquet.tmp-{'b' * 32}"
    stale.write_bytes(b"PAR1 half")
    fresh.write_bytes(b"PAR1 half")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    assert store.remove_temporaries(older_than_s=600) == 1
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize(
    "value",
    ["", ".", "..", "../x", "a/b", "a\\b", "a\x00b", "a\nb", "it's", 'say"x"', "x;DROP TABLE agent", "a b",
     ".hidden", "s1' OR '1'='1", "é"],
)  # fmt: skip
def test_safe_path_component_rejects_anything_that_could_escape_or_confuse_a_path(value: str) -> None:
    with pytest.raises(ValueError, match="unsafe path component"):
        safe_path_component(value)


@given(st.text(max_size=40))
def test_any_accepted_component_names_one_entry_directly_inside_its_folder(value: str) -> None:
    try:
        safe = safe_path_component(value)
    except ValueError:
        return
    root = "/data/parquet"
    joined = os.path.normpath(os.path.join(root, safe))
    assert os.path.dirname(joined) == root and os.path.basename(joined) == safe


def test_safe_path_component_accepts_snapshot_ids_dates_and_table_names() -> None:
    for value in ("20261127T045300Z-3f9a1c2e", "date=2026-11-27", "chat_event", "current.parquet"):
        assert safe_path_component(value) == value


def test_an_unsafe_snapshot_id_never_reaches_the_file_system(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path / "root"))
    with pytest.raises(ValueError):
        store.write_fact("chat_event", "../../escape", DAY, _events(1, "x"))
    assert not any(tmp_path.rglob("*.parquet"))


def test_a_file_uri_root_is_a_local_folder(tmp_path: Path) -> None:
    store = ParquetStore(f"file://{tmp_path}")
    store.write_fact("chat_slots_snapshot", "s1", DAY, pa.table({"snapshot_id": ["s1"], "snapshot_at": [AT],
                                                                 "available_slots": [-1]}))  # fmt: skip
    assert _all_files(tmp_path) == ["chat_slots_snapshot/date=2026-11-27/s1.parquet"]


def test_an_object_store_root_gets_whole_objects_at_the_same_keys() -> None:
    store = ParquetStore("mock:///bucket/lake")  # Arrow's in-memory object store: no rename, uploads appear whole
    store.write_fact("chat_event", "s1", DAY, _events(2, "s1"))
    path = store.write_fact("chat_event", "s1", DAY, _events(4, "s1"))
    assert path == "bucket/lake/chat_event/date=2026-11-27/s1.parquet"
    assert store.fact_files("chat_event") == [path]
    assert pq.read_table(path, filesystem=store.fs).num_rows == 4
    assert store.remove_temporaries() == 0
