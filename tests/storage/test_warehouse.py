"""Bulk upserts and reads on both dialects: no duplicates, updates in place, timestamps as aware UTC."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest
import sqlalchemy as sa

from pipelines.storage import schema
from pipelines.storage.warehouse import Warehouse

T0 = datetime(2026, 11, 27, 4, 53, 0, 123456, tzinfo=UTC)


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Warehouse]:
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    yield warehouse
    warehouse.dispose()


def _state_rows(n: int, chat_state: str, snapshot_id: str = "s1") -> pa.Table:
    return pa.table(
        {
            "snapshot_id": [snapshot_id] * n,
            "snapshot_at": pa.array([T0] * n, type=schema.TIMESTAMP_TYPE),
            "agent_id": [str(i) for i in range(n)],
            "chat_state_code": [2] * n,
            "chat_state": [chat_state] * n,
            "voice_state_code": pa.nulls(n, pa.int64()),
            "voice_state": pa.nulls(n, pa.string()),
            "max_chats": [-1] * n,
            "chats": [None] * n,
            "elapsed_in_state_ms": [908445] * n,
            "state_started_at": pa.array([T0 - timedelta(milliseconds=908445)] * n, type=schema.TIMESTAMP_TYPE),
            "agent_group_id": ["-1"] * n,
        },
        schema=schema.ARROW_SCHEMAS["agent_state_snapshot"],
    )


def test_upserting_twice_keeps_one_row_per_key_and_updates_non_key_columns(warehouse: Warehouse) -> None:
    with warehouse.begin() as conn:
        assert warehouse.upsert(conn, "agent_state_snapshot", _state_rows(3, "Online")) == 3
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "agent_state_snapshot", _state_rows(3, "Away"))
    with warehouse.begin() as conn:
        table = warehouse.read_table(conn, "agent_state_snapshot")
    assert table.num_rows == 3
    assert set(table.column("chat_state").to_pylist()) == {"Away"}


def test_upsert_without_update_keeps_the_stored_row(warehouse: Warehouse) -> None:
    row = {"error_id": "e1", "snapshot_id": "s1", "endpoint": "availableAgents", "error": "first", "at": T0}
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "ingest_error", [row])
        warehouse.upsert(conn, "ingest_error", [{**row, "error": "second"}], update=False)
        table = warehouse.read_table(conn, "ingest_error")
    assert table.column("error").to_pylist() == ["first"]


def test_upsert_leaves_columns_absent_from_the_rows_as_stored(warehouse: Warehouse) -> None:
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "chat_session", [{"chat_id": "c1", "state": "chatting", "next_from": 0}])
        warehouse.upsert(conn, "chat_session", [{"chat_id": "c1", "last_event_id": 4, "next_from": 5}])
        (row,) = warehouse.read_table(conn, "chat_session").to_pylist()
    assert (row["state"], row["last_event_id"], row["next_from"]) == ("chatting", 4, 5)


def test_first_seen_at_survives_later_sightings_and_a_known_skill_name_is_not_erased(warehouse: Warehouse) -> None:
    later = T0 + timedelta(minutes=5)
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "skill", [{"skill_id": "9", "skill_name": "Sales", "first_seen_at": T0,
                                          "last_seen_at": T0}])  # fmt: skip
        warehouse.upsert(conn, "skill", [{"skill_id": "9", "skill_name": None, "first_seen_at": later,
                                          "last_seen_at": later}])  # fmt: skip
        (row,) = warehouse.read_table(conn, "skill").to_pylist()
    assert row == {"skill_id": "9", "skill_name": "Sales", "first_seen_at": T0, "last_seen_at": later}


def test_timestamps_round_trip_as_aware_utc_and_are_stored_naive_utc(warehouse: Warehouse) -> None:
    paris = timezone(timedelta(hours=1))
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "snapshot_run", [{"snapshot_id": "s1", "started_at": T0.astimezone(paris),
                                                 "finished_at": T0 + timedelta(seconds=2)}])  # fmt: skip
        table = warehouse.read_table(conn, "snapshot_run", where={"snapshot_id": "s1"})
        stored = conn.execute(sa.text("SELECT CAST(started_at AS TEXT) FROM snapshot_run")).scalar_one()
    assert table.schema.field("started_at").type == pa.timestamp("us", tz="UTC")
    (row,) = table.to_pylist()
    assert row["started_at"] == T0 and row["started_at"].utcoffset() == timedelta(0)
    assert row["finished_at"] == T0 + timedelta(seconds=2)
    assert stored.startswith("2026-11-27 04:53:00.123456")


def test_arrow_timestamps_in_another_zone_are_stored_as_the_same_instant(warehouse: Warehouse) -> None:
    rows = _state_rows(1, "Online").set_column(
        1, "snapshot_at", pa.array([T0], type=pa.timestamp("ns", tz="America/New_York"))
    )
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "agent_state_snapshot", rows)
        (row,) = warehouse.read_table(conn, "agent_state_snapshot").to_pylist()
    assert row["snapshot_at"] == T0


def test_read_table_filters_by_snapshot_and_keeps_the_arrow_schema_when_empty(warehouse: Warehouse) -> None:
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "agent_state_snapshot", _state_rows(2, "Online", "s1"))
        warehouse.upsert(conn, "agent_state_snapshot", _state_rows(5, "Online", "s2"))
        assert warehouse.read_table(conn, "agent_state_snapshot", where={"snapshot_id": "s2"}).num_rows == 5
        empty = warehouse.read_table(conn, "agent_state_snapshot", where={"snapshot_id": "nope"})
    assert empty.num_rows == 0
    assert empty.schema == schema.ARROW_SCHEMAS["agent_state_snapshot"]


def test_booleans_and_bigints_round_trip(warehouse: Warehouse) -> None:
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "agent", [{"agent_id": "1", "monitored": True}, {"agent_id": "2", "monitored": False}])
        warehouse.upsert(conn, "chat_event", [{"chat_id": "c", "event_id": 2**40, "by": "visitor"}])
        agents = warehouse.read_table(conn, "agent")
        events = warehouse.read_table(conn, "chat_event")
    assert agents.column("monitored").to_pylist() == [True, False]
    assert events.column("event_id").to_pylist() == [2**40]
    assert events.column("by").to_pylist() == ["visitor"]


def test_a_failed_transaction_writes_nothing(warehouse: Warehouse) -> None:
    with pytest.raises(RuntimeError), warehouse.begin() as conn:
        warehouse.upsert(conn, "agent_state_snapshot", _state_rows(2, "Online"))
        raise RuntimeError("crash mid-run")
    with warehouse.begin() as conn:
        assert warehouse.read_table(conn, "agent_state_snapshot").num_rows == 0


def test_large_upserts_go_in_chunks_without_hitting_variable_limits(warehouse: Warehouse) -> None:
    with warehouse.begin() as conn:
        assert warehouse.upsert(conn, "agent_state_snapshot", _state_rows(12_345, "Online")) == 12_345
        assert warehouse.read_table(conn, "agent_state_snapshot").num_rows == 12_345


def test_unknown_tables_and_columns_are_refused_before_reaching_sql(warehouse: Warehouse) -> None:
    with warehouse.begin() as conn:
        with pytest.raises(ValueError, match="unknown warehouse table"):
            warehouse.upsert(conn, "agent; DROP TABLE agent", [{"agent_id": "1"}])
        with pytest.raises(ValueError, match="no column"):
            warehouse.read_table(conn, "agent", where={"agent_id = '1' OR 1=1 --": "x"})
        with pytest.raises(ValueError, match="key columns"):
            warehouse.upsert(conn, "agent", [{"nickname": "x"}])


def test_values_are_bound_not_interpolated(warehouse: Warehouse) -> None:
    hostile = "x'); DROP TABLE agent; --"
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "agent", [{"agent_id": hostile, "nickname": hostile}])
        assert warehouse.read_table(conn, "agent", where={"agent_id": hostile}).column("nickname").to_pylist() == [
            hostile
        ]


def test_rows_repeating_a_key_in_one_batch_store_the_last_one(warehouse: Warehouse) -> None:
    with warehouse.begin() as conn:
        sent = warehouse.upsert(conn, "agent", [{"agent_id": "1", "nickname": "a"}, {"agent_id": "1", "nickname": "b"}])
        assert sent == 1
        assert warehouse.read_table(conn, "agent").column("nickname").to_pylist() == ["b"]


def test_text_with_tabs_newlines_backslashes_and_quotes_round_trips(warehouse: Warehouse) -> None:
    awkward = 'tab\there\nnew line \\N back\\slash "quoted" \'single\' \\. end'
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "ingest_error", pa.table({"error_id": ["e1", "e2"], "payload": [awkward, None]}))
        table = warehouse.read_table(conn, "ingest_error")
    assert table.column("payload").to_pylist() == [awkward, None]


def test_several_upserts_of_one_table_in_one_transaction_all_land(warehouse: Warehouse) -> None:
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "agent_state_snapshot", _state_rows(3, "Online", "s1"))
        warehouse.upsert(conn, "agent_state_snapshot", _state_rows(4, "Away", "s2"))
        warehouse.upsert(conn, "agent_state_snapshot", _state_rows(2, "Away", "s1"))
    with warehouse.begin() as conn:
        table = warehouse.read_table(conn, "agent_state_snapshot")
    assert table.num_rows == 7
    assert table.filter(pa.compute.equal(table.column("chat_state"), "Away")).num_rows == 6


def test_an_in_memory_warehouse_is_one_database_for_every_thread() -> None:
    warehouse = Warehouse("sqlite://")
    try:
        warehouse.migrate()
        with warehouse.begin() as conn:
            warehouse.upsert(conn, "agent", [{"agent_id": "1"}])
        seen: list[int] = []

        def read() -> None:
            with warehouse.begin() as conn:
                seen.append(warehouse.read_table(conn, "agent").num_rows)

        thread = threading.Thread(target=read)
        thread.start()
        thread.join(30)
        assert seen == [1]
    finally:
        warehouse.dispose()


def test_nul_characters_in_text_are_stored_as_replacement_characters_on_both_dialects(warehouse: Warehouse) -> None:
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "ingest_error", [{"error_id": "e1", "payload": "<html>\x00\x00 garbage"}])
        (payload,) = warehouse.read_table(conn, "ingest_error").column("payload").to_pylist()
    assert payload == "<html>\ufffd\ufffd garbage"
