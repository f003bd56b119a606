"""The numbered SQL migrations build the contract's tables on SQLite and PostgreSQL, once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines.storage import migrations, schema
from pipelines.storage.warehouse import Warehouse

CONTRACT_TABLES = {
    "snapshot_run",
    "agent_state_snapshot",
    "agent",
    "skill",
    "agent_skill",
    "session_availability_snapshot",
    "chat_slots_snapshot",
    "chat_session",
    "chat_event",
    "ingest_error",
}


def _family(type_: sa.types.TypeEngine) -> str:
    """The type family a reflected column and a schema.py column must agree on."""
    if isinstance(type_, sa.types.TypeDecorator):
        type_ = type_.impl_instance
    for family, cls in (("bigint", sa.BigInteger), ("integer", sa.Integer), ("timestamp", sa.DateTime),
                        ("boolean", sa.Boolean), ("text", sa.String)):  # fmt: skip
        if isinstance(type_, cls):
            return family
    raise AssertionError(f"unexpected column type {type_!r}")


def test_migrations_create_every_contract_table(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    try:
        assert warehouse.migrate() == [m.version for m in migrations.discover()]
        tables = set(sa.inspect(warehouse.engine).get_table_names())
        assert tables >= CONTRACT_TABLES | {"schema_migrations"}
    finally:
        warehouse.dispose()


def test_migrating_twice_applies_nothing_the_second_time(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    try:
        warehouse.migrate()
        assert warehouse.migrate() == []
        with warehouse.begin() as conn:
            assert sorted(migrations.applied_versions(conn)) == [m.version for m in migrations.discover()]
    finally:
        warehouse.dispose()


def test_reflected_schema_matches_schema_py_columns_types_and_keys(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    try:
        warehouse.migrate()
        inspector = sa.inspect(warehouse.engine)
        assert set(schema.TABLES) == CONTRACT_TABLES
        for name, table in schema.TABLES.items():
            reflected = inspector.get_columns(name)
            assert [c["name"] for c in reflected] == [c.name for c in table.columns], name
            assert [_family(c["type"]) for c in reflected] == [_family(c.type) for c in table.columns], name
            assert tuple(inspector.get_pk_constraint(name)["constrained_columns"]) == schema.KEYS[name]
    finally:
        warehouse.dispose()


def test_reporting_indexes_exist(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    try:
        warehouse.migrate()
        inspector = sa.inspect(warehouse.engine)

        def indexed(table: str) -> set[tuple[str, ...]]:
            return {tuple(ix["column_names"]) for ix in inspector.get_indexes(table)}

        assert ("agent_id", "snapshot_at") in indexed("agent_state_snapshot")
        assert ("snapshot_id",) in indexed("chat_event")
        assert ("monitored_by", "polling_stopped_at") in indexed("chat_session")
    finally:
        warehouse.dispose()


def test_the_persisted_interval_tables_match_schema_py_and_have_the_indexes_a_day_needs(warehouse_url: str) -> None:
    """Migration 0004: derived tables (pipelines.reporting.interval_store), outside the contract's TABLES."""
    warehouse = Warehouse(warehouse_url)
    try:
        warehouse.migrate()
        inspector = sa.inspect(warehouse.engine)
        assert not set(schema.DERIVED_TABLES) & set(schema.TABLES)
        for name, table in schema.DERIVED_TABLES.items():
            reflected = inspector.get_columns(name)
            assert [c["name"] for c in reflected] == [c.name for c in table.columns], name
            assert [c["nullable"] for c in reflected] == [c.nullable for c in table.columns], name
        assert inspector.get_pk_constraint("agent_state_open")["constrained_columns"] == ["agent_id"]
        indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes("agent_state_interval_store")}
        assert {("ended_at_us", "started_at_us"), ("agent_id", "started_at_us")} <= indexed
    finally:
        warehouse.dispose()


def _migrate_in_child(url: str) -> None:
    warehouse = Warehouse(url)
    warehouse.migrate()
    warehouse.dispose()


def test_two_processes_migrating_at_once_both_succeed_and_apply_each_version_once(warehouse_url: str) -> None:
    context = multiprocessing.get_context("fork")  # no re-import: the two really start together
    children = [context.Process(target=_migrate_in_child, args=(warehouse_url,)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0, 0]
    warehouse = Warehouse(warehouse_url)
    try:
        with warehouse.begin() as conn:
            rows = conn.execute(sa.text("SELECT version FROM schema_migrations")).scalars().all()
        assert sorted(rows) == [m.version for m in migrations.discover()]
    finally:
        warehouse.dispose()


def test_statement_splitter_ignores_semicolons_in_comments_and_literals() -> None:
    script = "-- a; comment\nCREATE TABLE t (x TEXT DEFAULT 'a;b');\n/* c; */ INSERT INTO t VALUES ('it''s;');\n"
    assert migrations.split_statements(script) == [
        "CREATE TABLE t (x TEXT DEFAULT 'a;b')",
        "INSERT INTO t VALUES ('it''s;')",
    ]


def test_misnamed_migration_file_is_an_error_not_a_skip(tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("SELECT 1;")
    (tmp_path / "2_bad.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"0001_name\.sql"):
        migrations.discover(tmp_path)


def test_migrations_are_found_from_the_source_tree() -> None:
    assert migrations.MIGRATIONS_DIR.is_dir()
    assert migrations.discover()[0].version == 1
