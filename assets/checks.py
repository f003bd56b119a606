"""Asset checks that fail on real defects of a run: lost or doubled rows, empty snapshots, cursors moving back."""

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import sqlalchemy as sa

from assets.run_checks import snapshot_run_without_errors
from pipelines.resources import SnapshotRunResource
from pipelines.storage import schema

PARQUET_KEYS = {
    "agent_state_snapshot": ("snapshot_id", "agent_id"),
    "chat_event": ("chat_id", "event_id"),
}


def sql_rows_of_snapshot(snapshot: SnapshotRunResource, table: str) -> int:
    runner = snapshot.runner
    assert runner is not None
    sql_table = schema.TABLES[table]
    with runner.warehouse.engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(sql_table).where(sql_table.c.snapshot_id == runner.snapshot_id)
        ).scalar_one()


def parquet_rows_match_sql(snapshot: SnapshotRunResource, table: str) -> dg.AssetCheckResult:
    """The run's Parquet file holds exactly the rows the run committed to SQL for its snapshot."""
    runner = snapshot.runner
    assert runner is not None
    sql_rows = sql_rows_of_snapshot(snapshot, table)
    path = runner.files.get(table)
    parquet_rows = pq.read_metadata(path, filesystem=runner.parquet.fs).num_rows if path else 0
    return dg.AssetCheckResult(
        passed=sql_rows == parquet_rows,
        metadata={"sql_rows": sql_rows, "parquet_rows": parquet_rows, "file": path or "(none written)"},
    )


def parquet_keys_unique(snapshot: SnapshotRunResource, table: str) -> dg.AssetCheckResult:
    """Across every Parquet file of the table, each key appears once (DuckDB count(*) vs count(distinct key))."""
    runner = snapshot.runner
    assert runner is not None
    files = runner.parquet.fact_files(table)
    if not files or not runner.parquet.local:
        return dg.AssetCheckResult(passed=True, metadata={"files": len(files), "checked": runner.parquet.local})
    keys = ", ".join(PARQUET_KEYS[table])
    with duckdb.connect() as con:
        total, distinct = con.execute(
            f"select count(*), count(distinct ({keys})) "
            "from read_parquet(?, hive_partitioning=true, union_by_name=true)",
            [files],
        ).fetchone()
    return dg.AssetCheckResult(passed=total == distinct, metadata={"rows": total, "distinct_keys": distinct})


@dg.asset_check(asset="agent_state_snapshot", description="Parquet rows equal SQL rows for this run's snapshot.")
def agent_state_parquet_matches_sql(snapshot: SnapshotRunResource) -> dg.AssetCheckResult:
    return parquet_rows_match_sql(snapshot, "agent_state_snapshot")


@dg.asset_check(asset="agent_state_snapshot", description="No (snapshot_id, agent_id) twice in the Parquet files.")
def agent_state_parquet_keys_unique(snapshot: SnapshotRunResource) -> dg.AssetCheckResult:
    return parquet_keys_unique(snapshot, "agent_state_snapshot")


@dg.asset_check(asset="agent_state_snapshot", description="An answered availableAgents never yields 0 agents.")
def agents_present_when_api_answered(snapshot: SnapshotRunResource) -> dg.AssetCheckResult:
    runner = snapshot.runner
    assert runner is not None
    rows = sql_rows_of_snapshot(snapshot, "agent_state_snapshot")
    answered = runner.agents_answered
    return dg.AssetCheckResult(passed=rows > 0 or not answered, metadata={"rows": rows, "api_answered": answered})


@dg.asset_check(asset="agent_state_snapshot", description="State codes outside 1-4 (kept as unknown:<code>).")
def unknown_state_codes(snapshot: SnapshotRunResource) -> dg.AssetCheckResult:
    runner = snapshot.runner
    assert runner is not None
    sql_table = schema.TABLES["agent_state_snapshot"]
    with runner.warehouse.engine.connect() as conn:
        unknown = conn.execute(
            sa.select(sql_table.c.chat_state, sa.func.count())
            .where(sql_table.c.snapshot_id == runner.snapshot_id, sql_table.c.chat_state.like("unknown:%"))
            .group_by(sql_table.c.chat_state)
        ).all()
    return dg.AssetCheckResult(
        passed=not unknown,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"unknown_states": {state: count for state, count in unknown}},
    )


@dg.asset_check(asset="chat_event", description="Parquet rows equal SQL rows for this run's events.")
def chat_event_parquet_matches_sql(snapshot: SnapshotRunResource) -> dg.AssetCheckResult:
    return parquet_rows_match_sql(snapshot, "chat_event")


@dg.asset_check(asset="chat_event", description="No (chat_id, event_id) twice in the Parquet files.")
def chat_event_parquet_keys_unique(snapshot: SnapshotRunResource) -> dg.AssetCheckResult:
    return parquet_keys_unique(snapshot, "chat_event")


@dg.asset_check(asset="chat_event", description="No cursor moved backwards, and none is ahead of its stored events.")
def cursors_never_move_backwards(snapshot: SnapshotRunResource) -> dg.AssetCheckResult:
    runner = snapshot.runner
    assert runner is not None
    sessions, events = schema.TABLES["chat_session"], schema.TABLES["chat_event"]
    stored_max = (
        sa.select(events.c.chat_id, sa.func.max(events.c.event_id).label("max_event_id"))
        .group_by(events.c.chat_id)
        .subquery()
    )
    with runner.warehouse.engine.connect() as conn:
        ahead = conn.execute(
            sa.select(sa.func.count())
            .select_from(sessions.outerjoin(stored_max, stored_max.c.chat_id == sessions.c.chat_id))
            .where(
                sa.or_(
                    sessions.c.last_event_id > sa.func.coalesce(stored_max.c.max_event_id, -1),
                    sessions.c.next_from > sa.func.coalesce(stored_max.c.max_event_id, -1) + 1,
                )
            )
        ).scalar_one()
    return dg.AssetCheckResult(
        passed=runner.cursor_regressions == 0 and ahead == 0,
        metadata={"cursor_regressions": runner.cursor_regressions, "cursors_ahead_of_events": ahead},
    )


INGEST_CHECKS = [
    agent_state_parquet_matches_sql,
    agent_state_parquet_keys_unique,
    agents_present_when_api_answered,
    unknown_state_codes,
    chat_event_parquet_matches_sql,
    chat_event_parquet_keys_unique,
    cursors_never_move_backwards,
    snapshot_run_without_errors,
]
