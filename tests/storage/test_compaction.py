"""Compaction of closed days: one sorted file with exactly the same rows, swapped in atomically, crash-safe.

Real files throughout: per-run files written by real snapshot runs against the simulator or by
``ParquetStore.write_fact``, read back with DuckDB, pandas and pyarrow.
"""

from __future__ import annotations

import os
import random
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipelines.ingest import run_snapshot
from pipelines.liveperson.connect import connect
from pipelines.storage import compaction, dirswap, schema
from pipelines.storage.compaction import compact_closed_days, compact_partition, is_compacted_file
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse
from tests.storage.interrupts import killed_between_fallback_renames

DAY = date(2026, 11, 26)
NEXT_DAY_NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _clock(at: datetime = NEXT_DAY_NOON):
    return lambda: at


def _snapshot_id(day: date, minute: int) -> str:
    return f"{day:%Y%m%d}T{minute // 60:02d}{minute % 60:02d}00Z-{minute:08x}"


def _events(snapshot_id: str, at: datetime, chats: list[str], first_event: int) -> pa.Table:
    n = len(chats)
    return pa.table(
        {
            "chat_id": chats,
            "event_id": [first_event + i for i in range(n)],
            "snapshot_id": [snapshot_id] * n,
            "event_type": ["line" if i % 3 else "state" for i in range(n)],
            "event_time": pa.array([at] * n, type=schema.TIMESTAMP_TYPE),
            "source": ["visitor"] * n,
            "by": ["visitor"] * n,
            "state": pa.nulls(n),  # all-null: must keep its string type
            "text": pa.nulls(n),
            "text_length": [5] * n,
            "raw_json": ["{}"] * n,
            "ingested_at": pa.array([at] * n, type=schema.TIMESTAMP_TYPE),
        }
    )


def write_event_runs(store: ParquetStore, day: date, runs: int, events_per_run: int = 7) -> int:
    """``runs`` per-run chat_event files of ``day``, chats in shuffled order; returns the row count."""
    rng = random.Random(day.toordinal())
    for minute in range(runs):
        at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=minute)
        chats = [f"chat-{rng.randrange(40):02d}" for _ in range(events_per_run)]
        store.write_fact("chat_event", _snapshot_id(day, minute), day, _events(_snapshot_id(day, minute), at,
                                                                              chats, minute * 1000))  # fmt: skip
    return runs * events_per_run


def partition(store: ParquetStore, table: str, day: date) -> Path:
    return Path(store.root) / table / f"date={day.isoformat()}"


def duck_rows(store: ParquetStore, table: str) -> list[tuple]:
    """Every row of ``table`` as the data contract says to read it, in a canonical order."""
    return duckdb.sql(
        f"SELECT * EXCLUDE (date) FROM read_parquet('{store.root}/{table}/*/*.parquet', hive_partitioning = true, "
        "union_by_name = true) ORDER BY ALL"
    ).fetchall()


# ------------------------------------------------------------------ after real snapshot runs


def test_after_real_runs_each_closed_day_becomes_one_file_per_table_with_the_same_rows_and_today_stays(
    simulator, tmp_path: Path
) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    store = ParquetStore(str(tmp_path / "parquet"))
    env = {"LP_STATE_DIR": str(tmp_path / "state"), "LP_SIMULATOR_LOGINS": "6"}
    with connect(env, simulator=simulator) as conn:
        for at in (simulator.clock.now(), simulator.clock.now() + timedelta(minutes=1),
                   simulator.clock.now() + timedelta(days=1)):  # fmt: skip
            simulator.clock.set(at=at, paused=True)
            assert run_snapshot(conn, warehouse, store) is not None
    closed, today = DAY, DAY + timedelta(days=1)
    before = {table: duck_rows(store, table) for table in schema.FACT_TABLES}
    today_files = {table: sorted(os.listdir(partition(store, table, today))) for table in schema.FACT_TABLES}
    assert len(before["chat_event"]) > 0, "the busy hour has chat events"

    results = compact_closed_days(store, warehouse, clock=simulator.clock.now, retired_grace_s=0)

    assert {(r.table, r.day, r.status) for r in results} == {(t, closed, "compacted") for t in schema.FACT_TABLES}
    for result in results:
        assert (result.files_before, result.files_after) == (2, 1), result
        files = os.listdir(partition(store, result.table, closed))
        assert len(files) == 1 and is_compacted_file(files[0])
        assert result.rows == pq.read_metadata(partition(store, result.table, closed) / files[0]).num_rows
    for table in schema.FACT_TABLES:
        assert duck_rows(store, table) == before[table], table
        assert sorted(os.listdir(partition(store, table, today))) == today_files[table], "today is untouched"
    with warehouse.engine.connect() as db:
        sql_events = db.execute(sa.select(sa.func.count()).select_from(schema.TABLES["chat_event"])).scalar_one()
    frame = pd.read_parquet(partition(store, "chat_event", closed))
    assert len(frame) + pq.read_table(partition(store, "chat_event", today)).num_rows == sql_events
    assert not (Path(store.root) / compaction.STAGING).exists(), "nothing staged or retired is left behind"
    warehouse.dispose()


# ------------------------------------------------------------------ the compacted file


def test_compacted_rows_are_sorted_by_chat_and_event_and_keep_the_explicit_arrow_schema(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    rows = write_event_runs(store, DAY, runs=30)

    (result,) = compact_closed_days(store, None, clock=_clock())

    (path,) = partition(store, "chat_event", DAY).iterdir()
    table = pq.read_table(path)
    assert table.schema.remove_metadata().equals(schema.ARROW_SCHEMAS["chat_event"])
    assert table.num_rows == result.rows == rows
    keys = list(zip(table.column("chat_id").to_pylist(), table.column("event_id").to_pylist(), strict=True))
    assert keys == sorted(keys)
    assert result.bytes_after < result.bytes_before


def test_a_day_busier_than_the_file_limit_is_split_into_files_of_at_most_that_many_rows(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=10, events_per_run=10)

    (result,) = compact_closed_days(store, None, clock=_clock(), max_rows_per_file=30)

    sizes = [pq.read_metadata(p).num_rows for p in sorted(partition(store, "chat_event", DAY).iterdir())]
    assert sizes == [30, 30, 30, 10] and result.files_after == 4
    assert duckdb.sql(f"SELECT count(*) FROM '{partition(store, 'chat_event', DAY)}/*.parquet'").fetchall() == [(100,)]


def test_files_written_before_a_column_was_added_compact_with_that_column_null(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=2, events_per_run=3)
    old = _events("20261126T235900Z-old", datetime(2026, 11, 26, 23, 59, tzinfo=UTC), ["c1", "c2"], 9000)
    old_file = partition(store, "chat_event", DAY) / "20261126T235900Z-old.parquet"
    pq.write_table(old.drop_columns(["text_length"]), old_file)

    (result,) = compact_closed_days(store, None, clock=_clock())

    assert result.status == "compacted" and result.rows == 8
    table = pq.read_table(partition(store, "chat_event", DAY))
    lengths = dict(zip(table.column("event_id").to_pylist(), table.column("text_length").to_pylist(), strict=True))
    assert lengths[9000] is None and lengths[9001] is None and lengths[0] == 5


# ------------------------------------------------------------------ which days


def test_only_closed_days_are_compacted_and_today_is_left_as_it_is(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    today = DAY + timedelta(days=1)
    write_event_runs(store, DAY, runs=3)
    write_event_runs(store, today, runs=3)
    today_before = sorted(os.listdir(partition(store, "chat_event", today)))

    results = compact_closed_days(store, None, clock=_clock(datetime(2026, 11, 27, 0, 0, 1, tzinfo=UTC)))

    assert [(r.day, r.status) for r in results] == [(DAY, "compacted")]
    assert sorted(os.listdir(partition(store, "chat_event", today))) == today_before


def test_a_day_that_an_unexported_run_may_still_write_into_is_not_compacted(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path / "parquet"))
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    warehouse.migrate()
    earlier = DAY - timedelta(days=3)
    for day in (earlier, DAY - timedelta(days=1), DAY):
        write_event_runs(store, day, runs=2)
    with warehouse.begin() as db:  # a run that crashed before its Parquet export, late on the day before DAY
        db.execute(sa.insert(schema.TABLES["snapshot_run"]).values(
            snapshot_id="20261125T235930Z-crashed0", started_at=datetime(2026, 11, 25, 23, 59, 30, tzinfo=UTC),
            status="failed", parquet_written_at=None))  # fmt: skip

    results = {r.day: r.status for r in compact_closed_days(store, warehouse, clock=_clock())}

    assert results == {earlier: "compacted", DAY - timedelta(days=1): "pending_export", DAY: "pending_export"}
    assert len(os.listdir(partition(store, "chat_event", DAY))) == 2
    warehouse.dispose()


# ------------------------------------------------------------------ idempotence and late files


def test_compacting_again_changes_nothing_and_forcing_it_gives_the_same_rows(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=12)
    compact_closed_days(store, None, clock=_clock())
    first = sorted(os.listdir(partition(store, "chat_event", DAY)))
    rows = duck_rows(store, "chat_event")

    (again,) = compact_closed_days(store, None, clock=_clock())
    assert (again.status, again.files_before, again.files_after, again.rows) == ("unchanged", 1, 1, 12 * 7)
    assert sorted(os.listdir(partition(store, "chat_event", DAY))) == first

    forced = compact_partition(store, "chat_event", DAY, force=True)
    assert forced.status == "compacted"
    assert sorted(os.listdir(partition(store, "chat_event", DAY))) != first, "a new generation of files"
    assert duck_rows(store, "chat_event") == rows


def test_a_late_per_run_file_in_a_compacted_day_is_merged_by_the_next_compaction_without_duplicates(
    tmp_path: Path,
) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=5)
    compact_closed_days(store, None, clock=_clock())
    late_at = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    late = _events(_snapshot_id(DAY, 1380), late_at, ["late-1", "late-2"], 1)  # a run never exported before
    store.write_fact("chat_event", _snapshot_id(DAY, 1380), DAY, late)
    # and a run that is exported again (its file rewritten, as export_missing_parquet does): replaces its rows
    rewritten = _events(_snapshot_id(DAY, 2), late_at, ["again"], 5)
    store.write_fact("chat_event", _snapshot_id(DAY, 2), DAY, rewritten)

    (result,) = compact_closed_days(store, None, clock=_clock())

    assert (result.status, result.files_before, result.files_after) == ("compacted", 3, 1)
    by_snapshot = dict(duckdb.sql(
        f"SELECT snapshot_id, count(*) FROM '{partition(store, 'chat_event', DAY)}/*.parquet' GROUP BY ALL"
    ).fetchall())  # fmt: skip
    assert by_snapshot[_snapshot_id(DAY, 1380)] == 2
    assert by_snapshot[_snapshot_id(DAY, 2)] == 1, "the rewritten run's file replaced its compacted rows"
    assert sum(by_snapshot.values()) == 4 * 7 + 2 + 1


# ------------------------------------------------------------------ atomicity as readers see it


def test_a_reader_during_repeated_compactions_always_sees_exactly_one_generation_and_every_row(
    tmp_path: Path,
) -> None:
    store = ParquetStore(str(tmp_path))
    expected = write_event_runs(store, DAY, runs=40, events_per_run=25)
    folder = partition(store, "chat_event", DAY)
    stop = threading.Event()
    seen = {"listings": 0, "reads": 0, "stale": 0}
    problems: list[str] = []

    def reader() -> None:
        con = duckdb.connect()
        while not stop.is_set():
            names = os.listdir(folder)
            generations = {n.rsplit("-", 1)[0] if is_compacted_file(n) else "per-run" for n in names}
            seen["listings"] += 1
            if len(generations) != 1:
                problems.append(f"listing saw {sorted(generations) or 'nothing'}")
            try:
                (count,) = con.execute(f"SELECT count(*) FROM read_parquet('{folder}/*.parquet')").fetchone()
            except duckdb.IOException:
                # DuckDB's glob reads the folder, then stats each name by path: a glob or an open that straddles
                # a swap finds the old names gone and fails ("No files found" / "No such file"). An error to
                # retry, never a wrong count.
                seen["stale"] += 1
                continue
            seen["reads"] += 1
            if count != expected:
                problems.append(f"read {count} rows")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(12):
            result = compact_partition(store, "chat_event", DAY, force=True, max_rows_per_file=(200, 1000)[round_ % 2])
            assert result.status == "compacted" and result.swap == "exchange"
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert seen["reads"] > 0 and seen["listings"] > 12


# ------------------------------------------------------------------ verification and crashes


def test_a_verification_mismatch_keeps_the_old_files_and_reports_it(tmp_path: Path, monkeypatch) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=6)
    before = sorted(os.listdir(partition(store, "chat_event", DAY)))
    rows = duck_rows(store, "chat_event")
    real = compaction._write_sorted

    def loses_a_row(*args, **kwargs):
        paths = real(*args, **kwargs)
        table = pq.read_table(paths[0])
        pq.write_table(table.slice(1), paths[0])
        return paths

    monkeypatch.setattr(compaction, "_write_sorted", loses_a_row)
    (result,) = compact_closed_days(store, None, clock=_clock())

    assert result.status == "mismatch" and "1 rows fewer" in result.detail
    assert sorted(os.listdir(partition(store, "chat_event", DAY))) == before
    assert duck_rows(store, "chat_event") == rows
    assert not (Path(store.root) / compaction.STAGING / "staging" / "chat_event" / f"date={DAY}").exists()


def test_a_crash_before_the_swap_leaves_the_old_files_and_the_next_compaction_finishes(
    tmp_path: Path, monkeypatch
) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=6)
    before = sorted(os.listdir(partition(store, "chat_event", DAY)))
    rows = duck_rows(store, "chat_event")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed before the swap")

    with monkeypatch.context() as patch:
        patch.setattr(compaction, "swap_directory", crash)
        with pytest.raises(KeyboardInterrupt):
            compact_closed_days(store, None, clock=_clock())
    assert sorted(os.listdir(partition(store, "chat_event", DAY))) == before
    assert duck_rows(store, "chat_event") == rows, "the staged copy is invisible to readers"
    assert pq.read_table(store.root).num_rows == len(rows), "pyarrow.dataset over the root skips .compaction too"

    (result,) = compact_closed_days(store, None, clock=_clock(), retired_grace_s=0)
    assert result.status == "compacted" and result.files_after == 1
    assert duck_rows(store, "chat_event") == rows
    assert not (Path(store.root) / compaction.STAGING).exists()


def test_a_crash_right_after_the_swap_leaves_the_new_file_and_the_next_compaction_cleans_up(
    tmp_path: Path, monkeypatch
) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=6)
    rows = duck_rows(store, "chat_event")
    real = compaction.swap_directory

    def swap_then_crash(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt("killed before the old files were deleted")

    with monkeypatch.context() as patch:
        patch.setattr(compaction, "swap_directory", swap_then_crash)
        with pytest.raises(KeyboardInterrupt):
            compact_closed_days(store, None, clock=_clock())
    (name,) = os.listdir(partition(store, "chat_event", DAY))
    assert is_compacted_file(name) and duck_rows(store, "chat_event") == rows
    assert (Path(store.root) / compaction.STAGING).exists(), "the retired files are still there"

    (result,) = compact_closed_days(store, None, clock=_clock())
    assert result.status == "unchanged"
    assert not (Path(store.root) / compaction.STAGING).exists()
    assert duck_rows(store, "chat_event") == rows


def test_the_two_rename_fallback_gives_the_same_result(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=6)
    rows = duck_rows(store, "chat_event")

    result = compact_partition(store, "chat_event", DAY, swap_mode="rename")

    assert (result.status, result.swap, result.files_after) == ("compacted", "rename", 1)
    assert duck_rows(store, "chat_event") == rows


def test_a_fallback_interrupted_between_its_two_renames_is_rolled_forward_by_the_next_compaction(
    tmp_path: Path, monkeypatch
) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=6)
    rows = duck_rows(store, "chat_event")
    with killed_between_fallback_renames(monkeypatch):
        compact_partition(store, "chat_event", DAY, swap_mode="rename")
    assert not partition(store, "chat_event", DAY).exists(), "the fallback's window: the day is briefly absent"

    (result,) = compact_closed_days(store, None, clock=_clock())

    assert result.status == "unchanged", "recovery moved the verified new files into place"
    (name,) = os.listdir(partition(store, "chat_event", DAY))
    assert is_compacted_file(name) and duck_rows(store, "chat_event") == rows


def test_exchange_swaps_two_folders_in_one_step(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "from-a").touch()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "from-b").touch()

    dirswap.exchange(str(tmp_path / "a"), str(tmp_path / "b"))

    assert os.listdir(tmp_path / "a") == ["from-b"] and os.listdir(tmp_path / "b") == ["from-a"]


def test_the_replaced_files_are_kept_aside_for_a_grace_period_then_purged(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=4)
    old_names = sorted(os.listdir(partition(store, "chat_event", DAY)))

    compact_closed_days(store, None, clock=_clock(), retired_grace_s=3600)

    (retired,) = (Path(store.root) / compaction.STAGING / "retired").iterdir()
    assert sorted(os.listdir(retired)) == old_names, "a reader that opened the old folder can still list it"
    assert compaction.purge_retired(store, older_than_s=3600) == 0
    assert compaction.purge_retired(store, older_than_s=0) == 1
    assert not (Path(store.root) / compaction.STAGING).exists()


def test_a_day_holding_anything_but_its_parquet_files_is_left_for_an_operator(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    write_event_runs(store, DAY, runs=3)
    (partition(store, "chat_event", DAY) / "notes.txt").write_text("copied here by hand")
    before = sorted(os.listdir(partition(store, "chat_event", DAY)))

    (result,) = compact_closed_days(store, None, clock=_clock())

    assert result.status == "mismatch" and "notes.txt" in result.detail
    assert sorted(os.listdir(partition(store, "chat_event", DAY))) == before


def test_an_unreadable_per_run_file_fails_its_day_only_and_keeps_every_file(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    other_day = DAY - timedelta(days=1)
    write_event_runs(store, DAY, runs=3)
    write_event_runs(store, other_day, runs=3)
    (partition(store, "chat_event", DAY) / f"{_snapshot_id(DAY, 999)}.parquet").write_bytes(b"PAR1 truncated")
    before = sorted(os.listdir(partition(store, "chat_event", DAY)))

    results = {r.day: r for r in compact_closed_days(store, None, clock=_clock())}

    assert results[DAY].status == "failed" and results[DAY].detail
    assert sorted(os.listdir(partition(store, "chat_event", DAY))) == before
    assert results[other_day].status == "compacted"
