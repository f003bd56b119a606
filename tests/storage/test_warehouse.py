"""Bulk upserts and reads on both dialects: no duplicates, updates in place, timestamps as aware UTC."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest
import sqlalchemy as sa

from pipelines.storage import schema
from pipelines.storage.warehouse import Warehouse

T0 = datetime(2026, 11, 27, 4, 53, 0, 123456, tzinfo=UTC)



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


def _bulk_events(n: int) -> pa.Table:
    """A chat_event batch big enough for the SQLite bulk path's shortcuts (repeated short strings, one ingestion
    instant, NUL characters, nulls, long unique JSON text)."""
    return pa.table(
        {
            "chat_id": [f"chat-{i // 100}" for i in range(n)],
            "event_id": [i % 100 + (1 << 40) for i in range(n)],
            "snapshot_id": ["s1"] * n,
            "event_type": [("line", "state", None)[i % 3] for i in range(n)],
            "event_time": pa.array(
                [T0 + timedelta(microseconds=7 * i) if i % 5 else None for i in range(n)], type=schema.TIMESTAMP_TYPE
            ),
            "source": ["agent\x00x" if i == 7 else ("agent", "visitor")[i % 2] for i in range(n)],
            "by": pa.nulls(n, pa.string()),
            "state": [None] * n,
            "text": [f"line {i} ✓" if i % 2 else None for i in range(n)],
            "text_length": [i if i % 2 else None for i in range(n)],
            "raw_json": [f'{{"@id":"{i}","text":{i},"x":"{"é" * (i % 70)}"}}' for i in range(n)],
            "ingested_at": pa.array([T0] * n, type=schema.TIMESTAMP_TYPE),
        }
    )


def test_a_bulk_event_batch_round_trips_value_for_value_on_both_dialects(warehouse: Warehouse) -> None:
    sent = _bulk_events(2_500)
    with warehouse.begin() as conn:
        assert warehouse.upsert(conn, "chat_event", sent.select(sent.column_names[::-1]), update=False) == 2_500
    with warehouse.begin() as conn:
        stored = warehouse.read_table(conn, "chat_event")
    expected = sent.to_pylist()
    expected[7]["source"] = "agent\ufffdx"
    by_key = {(row["chat_id"], row["event_id"]): row for row in stored.to_pylist()}
    assert by_key == {(row["chat_id"], row["event_id"]): row for row in expected}


def test_a_bulk_insert_without_update_keeps_the_stored_rows_and_commits_with_the_transaction(
    warehouse: Warehouse,
) -> None:
    first = _bulk_events(1_500)
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "chat_event", first, update=False)
    again = first.set_column(2, "snapshot_id", pa.array(["s2"] * 1_500))
    with pytest.raises(RuntimeError), warehouse.begin() as conn:
        warehouse.upsert(conn, "chat_event", _bulk_events(3_000).set_column(2, "snapshot_id", pa.array(["s3"] * 3_000)),
                         update=False)  # fmt: skip
        raise RuntimeError("crash before commit")
    with warehouse.engine.connect() as conn:  # no explicit begin: the insert joins the autobegun transaction
        warehouse.upsert(conn, "chat_event", again, update=False)
        conn.commit()
    with warehouse.begin() as conn:
        stored = warehouse.read_table(conn, "chat_event")
    assert stored.num_rows == 1_500
    assert set(stored.column("snapshot_id").to_pylist()) == {"s1"}


def test_update_by_key_sets_each_rows_columns_in_one_statement_per_column_set(warehouse: Warehouse) -> None:
    later = T0 + timedelta(minutes=5)
    with warehouse.begin() as conn:
        warehouse.upsert(conn, "chat_session", [{"chat_id": c, "next_from": 0} for c in ("a", "b", "c", "d")])
        warehouse.update_by_key(
            conn,
            "chat_session",
            [
                {"chat_id": "a", "next_from": 10, "last_event_id": 9, "last_seen_at": later},
                {"last_event_id": 4, "chat_id": "b", "next_from": 5, "last_seen_at": T0},  # same columns, other order
                {"chat_id": "c", "polling_stopped_at": later, "stop_reason": "not_found"},
                {"chat_id": "x'); DROP TABLE chat_session; --", "next_from": 1},  # no such chat: nothing happens
            ],
        )
        with pytest.raises(ValueError, match="key columns"):
            warehouse.update_by_key(conn, "chat_session", [{"next_from": 1}])
    with warehouse.begin() as conn:
        rows = {row["chat_id"]: row for row in warehouse.read_table(conn, "chat_session").to_pylist()}
    assert set(rows) == {"a", "b", "c", "d"}
    assert (rows["a"]["next_from"], rows["a"]["last_event_id"], rows["a"]["last_seen_at"]) == (10, 9, later)
    assert (rows["b"]["next_from"], rows["b"]["last_event_id"], rows["b"]["last_seen_at"]) == (5, 4, T0)
    c = rows["c"]
    assert (c["polling_stopped_at"], c["stop_reason"], c["next_from"]) == (later, "not_found", 0)
    assert (rows["d"]["next_from"], rows["d"]["last_event_id"], rows["d"]["stop_reason"]) == (0, None, None)
