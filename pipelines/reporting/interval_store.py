"""``agent_state_interval`` persisted: the view's rows kept in the warehouse and advanced run by run.

Why: rebuilding intervals from snapshots orders every snapshot of a day by agent and time (7.2 M rows for 5,000
agents at one-minute snapshots), which no query shape does within the reporting goals (docs/reporting.md,
"Performance and indexes"). The rules look only at an agent's previous snapshot, so they run as a state machine,
and a day's report reads the ~95,000 intervals instead.

Two tables (migration 0004, ``schema.DERIVED_TABLES``):

- ``agent_state_interval_store``: every closed row of the view ``agent_state_interval``, same columns (plus
  ``opened_at_us``);
- ``agent_state_open``: per agent, the row it is in now (the view's last row of the agent, which ends at its last
  snapshot) and what the rules need of that last snapshot: its time, reported start and run's ``interval_s`` (its
  state is the open row's).

The view's rows are the store's rows plus one row per ``agent_state_open`` (``current_rows_sql``). The view stays
the reference definition; the tests compare the two over the same snapshots.

How it is kept (every write in the caller's transaction, serialized by the warehouse: SQLite's ``BEGIN
IMMEDIATE``, on PostgreSQL a transaction-scoped advisory lock taken here):

- ``apply_run(conn, snapshot_id)``: a run's snapshots become visible (``SnapshotRunner.finish`` with a status that
  is not ``failed``, in the transaction of that status; dead-letter replay, in the transaction that lands them).
  An agent whose open state is older than the run is advanced by ``fold`` (vectorized over all agents: O(agents)
  per run, whatever the history). An agent whose last folded snapshot is not older (a replayed or late run) is
  folded again from its previous snapshot on (``rebuild_after``; every row keeps ``opened_at_us``, the time of
  the snapshot whose arrival opened it, which says where to resume), or, failing that, rebuilt from all of its
  snapshots (``rebuild``), which the warehouse keeps for the retention period. A run whose status is ``failed``
  contributes nothing, as in the view.
- First use: when ``agent_state_open`` is empty (a warehouse migrated from a version without the store, or one
  whose snapshots were loaded by other means), ``apply_run`` builds the whole store from the snapshots first, in
  the same transaction, so a crash leaves the store unbuilt and the next run builds it again. Readers
  (``is_built``) fall back to the snapshot computation until then.
- Retention (``delete_before``): rows that ended by the cutoff go, and the open state of agents last seen before
  it. An interval that spans the cutoff stays whole (its start before the cutoff is kept), so a day after the
  cutoff reports the same as before the cutoff was applied; the view over the remaining snapshots instead
  starts such an agent afresh at its first remaining snapshot.

Every time is integer microseconds since 1970, computed in SQL with the views' ``EPOCH_US`` macro, so the store and
the view agree to the microsecond on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from pipelines.reporting.views import render, sqlglot_dialect
from pipelines.storage.schema import UtcDateTime, agent_state_interval_store, agent_state_open
from pipelines.storage.warehouse import bind_values

JITTER_US = 2_000_000  # a start moving by at most 2 s is the same start (docs/reporting.md, rule 4)
DEFAULT_INTERVAL_S = 60
AWAY_CODE, AWAY = 4, "Away"
FLAP_CODES = (2, 3)  # Online, Occupied: a flap between two snapshots is counted as Away (rule 5)
REBUILD_AGENTS_PER_READ = 500
LATE_LOOKBACK_US = 86_400_000_000  # a late snapshot resumes from its agent's previous one if within a day before
_ADVISORY_KEY = 0x4C505F495653  # "LP_IVS": serializes the writers of the store on PostgreSQL

# The visible snapshots (of runs not failed, or without a run row), as the view's first step reads them.
_SNAPSHOTS = """
SELECT
    s.agent_id AS agent_id,
    s.chat_state_code AS chat_state_code,
    COALESCE(s.chat_state, 'unknown') AS chat_state,
    s.agent_group_id AS agent_group_id,
    CASE WHEN COALESCE(s.elapsed_in_state_ms, 0) > 0 THEN 1 ELSE 0 END AS tracked,
    EPOCH_US(s.snapshot_at) AS at_us,
    EPOCH_US(COALESCE(s.state_started_at, s.snapshot_at)) AS reported_start_us,
    COALESCE(r.interval_s, 60) AS interval_s
FROM agent_state_snapshot AS s
LEFT JOIN snapshot_run AS r ON r.snapshot_id = s.snapshot_id
WHERE (r.status IS NULL OR r.status <> 'failed')
"""
_SNAPSHOT_FIELDS = (
    "agent_id",
    "chat_state_code",
    "chat_state",
    "agent_group_id",
    "tracked",
    "at_us",
    "reported_start_us",
    "interval_s",
)
_OPEN_FIELDS = (
    "agent_id",
    "chat_state_code",
    "chat_state",
    "agent_group_id",
    "started_at_us",
    "started_shown_us",
    "last_at_us",
    "last_reported_start_us",
    "last_interval_s",
    "opened_at_us",
)
ROW_FIELDS = (
    "agent_id",
    "chat_state_code",
    "chat_state",
    "agent_group_id",
    "observed",
    "started_at_us",
    "started_shown_us",
    "ended_at_us",
    "ended_shown_us",
    "opened_at_us",
)


def epoch_us(at: datetime) -> int:
    """``at`` (zone-aware) in the store's unit: integer microseconds since 1970 UTC."""
    return (at - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@cache
def _snapshot_sql(dialect: str) -> str:
    return render(_SNAPSHOTS, dialect)


# ---------------------------------------------------------------------------------------------- the state machine
Columns = dict[str, np.ndarray]


def _empty(fields: Sequence[str]) -> Columns:
    return {name: np.empty(0, dtype=object if name in _OBJECT_FIELDS else _dtype(name)) for name in fields}


_OBJECT_FIELDS = frozenset({"agent_id", "chat_state_code", "chat_state", "agent_group_id"})


def _dtype(name: str) -> type:
    return bool if name in ("tracked", "observed") else np.int64


def columns_of(rows: Sequence[Sequence[Any]], fields: Sequence[str]) -> Columns:
    """Rows (tuples in ``fields`` order, as a cursor returns them) as one numpy array per field."""
    if not rows:
        return _empty(fields)
    columns = list(zip(*rows, strict=True))
    out: Columns = {}
    for name, values in zip(fields, columns, strict=True):
        if name in _OBJECT_FIELDS:
            array = np.empty(len(values), dtype=object)
            array[:] = values
            out[name] = array
        else:
            out[name] = np.asarray(values, dtype=_dtype(name))
    return out


def fold(open_state: Columns, snapshots: Columns) -> tuple[Columns, Columns]:
    """Advance the intervals of the agents in ``snapshots`` past those snapshots.

    ``open_state``: ``agent_state_open`` rows (``_OPEN_FIELDS``), any agents, any order; an agent without one has
    never been seen. ``snapshots``: visible snapshots (``_SNAPSHOT_FIELDS``), sorted by agent then time, every one
    later than its agent's ``last_at_us`` (the caller rebuilds the agents for which that does not hold).

    Returns ``(closed, opened)``: the rows that these snapshots close (``ROW_FIELDS``, the view's rows of which
    the end is now known), and the new open state of every agent in ``snapshots`` (``_OPEN_FIELDS``).

    The rules are the view's (sql/views/agent_state_interval.sql), evaluated for all snapshots at once: each
    snapshot's predecessor is the previous one of its agent in the batch, or the agent's open state.
    """
    n = len(snapshots["at_us"])
    if n == 0:
        return _empty(ROW_FIELDS), _empty(_OPEN_FIELDS)
    agent = snapshots["agent_id"]
    state = snapshots["chat_state"]
    at = snapshots["at_us"]
    reported = snapshots["reported_start_us"]
    tracked = snapshots["tracked"].astype(bool)
    interval_s = snapshots["interval_s"]

    first = np.ones(n, dtype=bool)
    first[1:] = agent[1:] != agent[:-1]
    last = np.ones(n, dtype=bool)
    last[:-1] = first[1:]
    first_rows = np.flatnonzero(first)
    agent_ordinal = np.cumsum(first) - 1

    # the predecessor of each snapshot: the one before it, or for an agent's first, the agent's open state
    where_open = (
        pd.Index(open_state["agent_id"]).get_indexer(agent[first_rows])
        if len(open_state["agent_id"])
        else np.full(len(first_rows), -1)
    )
    continued = where_open >= 0
    carried_rows, carried_from = first_rows[continued], where_open[continued]
    has_prev = ~first
    has_prev[carried_rows] = True
    prev_at, prev_reported, prev_interval = _shifted(at), _shifted(reported), _shifted(interval_s)
    prev_state = _shifted(state)
    prev_at[carried_rows] = open_state["last_at_us"][carried_from]
    prev_reported[carried_rows] = open_state["last_reported_start_us"][carried_from]
    prev_interval[carried_rows] = open_state["last_interval_s"][carried_from]
    prev_state[carried_rows] = open_state["chat_state"][carried_from]

    started = np.minimum(reported, at)  # a start after its own snapshot is taken as the snapshot
    prev_started = np.minimum(prev_reported, prev_at)
    gap = has_prev & (at - prev_at > 2_000_000 * prev_interval)
    changed = has_prev & (state != prev_state)
    is_new = (
        ~has_prev
        | changed
        | (gap & ~(tracked & (started <= prev_at + JITTER_US)))  # continues through a gap only if proven
        | (~gap & tracked & (started - prev_started > JITTER_US))  # left and came back between snapshots
    )
    placed = ~has_prev | (started >= prev_at)  # never before the snapshot that still saw the old state
    start_us = np.where(placed, started, prev_at)
    start_shown_us = np.where(placed, reported, prev_at)

    code = snapshots["chat_state_code"]
    group = snapshots["agent_group_id"]
    unobserved = is_new & gap & (start_us > prev_at)
    flap = is_new & ~gap & has_prev & ~changed & (start_us > prev_at) & _one_of(code, FLAP_CODES)
    midpoint = (prev_at + start_us) // 2

    # the rows that start, each with its sort key: an agent's carried open row, then per snapshot the unobserved or
    # flap row before it, then its new interval (the view's ord)
    parts = [
        _segment(
            3 * carried_rows,
            carried_rows,
            open_state["chat_state_code"][carried_from],
            open_state["chat_state"][carried_from],
            open_state["agent_group_id"][carried_from],
            True,
            open_state["started_at_us"][carried_from],
            open_state["started_shown_us"][carried_from],
            open_state["opened_at_us"][carried_from],
        ),
    ]
    rows = np.flatnonzero(unobserved)
    parts.append(
        _segment(3 * rows + 1, rows, None, None, group[rows], False, prev_at[rows], prev_at[rows], at[rows])
    )
    rows = np.flatnonzero(flap)
    parts.append(
        _segment(3 * rows + 1, rows, AWAY_CODE, AWAY, group[rows], True, midpoint[rows], midpoint[rows], at[rows])
    )
    rows = np.flatnonzero(is_new)
    parts.append(
        _segment(
            3 * rows + 2, rows, code[rows], state[rows], group[rows], True, start_us[rows], start_shown_us[rows],
            at[rows],
        )
    )
    segments = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    order = np.argsort(segments["key"], kind="stable")
    segments = {name: values[order] for name, values in segments.items()}

    owner = agent_ordinal[segments["row"]]
    last_segment = np.ones(len(owner), dtype=bool)
    last_segment[:-1] = owner[1:] != owner[:-1]
    closing = np.flatnonzero(~last_segment)
    closed = {
        "agent_id": agent[segments["row"][closing]],
        "chat_state_code": segments["code"][closing],
        "chat_state": segments["state"][closing],
        "agent_group_id": segments["group"][closing],
        "observed": segments["observed"][closing],
        "started_at_us": segments["start_us"][closing],
        "started_shown_us": segments["shown_us"][closing],
        "ended_at_us": segments["start_us"][closing + 1],
        "ended_shown_us": segments["shown_us"][closing + 1],
        "opened_at_us": segments["opened"][closing],
    }
    opening = np.flatnonzero(last_segment)  # one per agent, in agent order, as the agents' last snapshots
    last_rows = np.flatnonzero(last)
    opened = {
        "agent_id": agent[last_rows],
        "chat_state_code": segments["code"][opening],
        "chat_state": segments["state"][opening],
        "agent_group_id": segments["group"][opening],
        "started_at_us": segments["start_us"][opening],
        "started_shown_us": segments["shown_us"][opening],
        "last_at_us": at[last_rows],
        "last_reported_start_us": reported[last_rows],
        "last_interval_s": interval_s[last_rows],
        "opened_at_us": segments["opened"][opening],
    }
    return closed, opened


def _one_of(codes: np.ndarray, wanted: Sequence[int]) -> np.ndarray:
    """Elementwise ``code IN wanted`` over an object array that may hold None (SQL: NULL IN (...) is not true)."""
    hit = np.zeros(len(codes), dtype=bool)
    for value in wanted:
        hit |= codes == value
    return hit


def _shifted(values: np.ndarray) -> np.ndarray:
    """``values`` moved one place later (the first place keeps its own value; the caller masks it)."""
    out = values.copy()
    out[1:] = values[:-1]
    return out


def _segment(
    key: np.ndarray,
    row: np.ndarray,
    code: Any,
    state: Any,
    group: np.ndarray,
    observed: bool,
    start_us: np.ndarray,
    shown_us: np.ndarray,
    opened_us: np.ndarray,
) -> Columns:
    n = len(row)

    def objects(value: Any) -> np.ndarray:
        if isinstance(value, np.ndarray):
            return value.astype(object)
        array = np.empty(n, dtype=object)
        array[:] = [value] * n
        return array

    return {
        "key": key.astype(np.int64),
        "row": row.astype(np.int64),
        "code": objects(code),
        "state": objects(state),
        "group": objects(group),
        "observed": np.full(n, observed, dtype=bool),
        "start_us": np.asarray(start_us, dtype=np.int64),
        "shown_us": np.asarray(shown_us, dtype=np.int64),
        "opened": np.asarray(opened_us, dtype=np.int64),
    }


# --------------------------------------------------------------------------------------------- the warehouse side
@dataclass
class Advance:
    """What one ``apply_run`` did."""

    agents_advanced: int = 0
    agents_rebuilt: int = 0
    rows_closed: int = 0
    built: bool = False


def _serialize(conn: sa.Connection) -> None:
    """One writer of the store at a time (SQLite: the warehouse's BEGIN IMMEDIATE holds the database already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})


def is_built(conn: sa.Connection) -> bool:
    """True when the store holds the snapshots: it has an open state, or there is no visible snapshot to hold.
    False also when the warehouse predates the store (migration 0004 not applied)."""
    if not sa.inspect(conn).has_table(agent_state_open.name):
        return False
    if conn.execute(sa.select(agent_state_open.c.agent_id).limit(1)).first() is not None:
        return True
    sql = f"SELECT 1 FROM ({_snapshot_sql(sqlglot_dialect(conn.dialect.name))}) AS q LIMIT 1"
    return conn.exec_driver_sql(sql).first() is None


def apply_run(conn: sa.Connection, snapshot_id: str) -> Advance:
    """Take the visible snapshots of run ``snapshot_id`` into the store, in ``conn``'s transaction (see the
    module's docstring). Builds the whole store first when it has never been built."""
    _serialize(conn)
    if conn.execute(sa.select(agent_state_open.c.agent_id).limit(1)).first() is None:
        agents = rebuild(conn)
        return Advance(agents_rebuilt=agents, built=True)
    snapshots = _read_snapshots(conn, "AND s.snapshot_id = :snapshot_id", {"snapshot_id": snapshot_id})
    if not len(snapshots["agent_id"]):
        return Advance()
    open_state = _read_open(conn)
    known = pd.Index(open_state["agent_id"]).get_indexer(snapshots["agent_id"])
    last_at = np.where(known >= 0, open_state["last_at_us"][known], np.iinfo(np.int64).min)
    late = snapshots["at_us"] <= last_at
    if late.any():
        unanchored = rebuild_after(conn, snapshots["agent_id"][late], snapshots["at_us"][late])
        if unanchored:
            rebuild(conn, unanchored)
    in_order = {name: values[~late] for name, values in snapshots.items()}
    order = np.argsort(in_order["agent_id"], kind="stable")  # one snapshot per agent per run: agent order suffices
    in_order = {name: values[order] for name, values in in_order.items()}
    closed, opened = fold(open_state, in_order)
    _write(conn, closed, opened)
    return Advance(
        agents_advanced=len(opened["agent_id"]), agents_rebuilt=int(late.sum()), rows_closed=len(closed["agent_id"])
    )


def rebuild_after(conn: sa.Connection, agent_ids: np.ndarray, late_us: np.ndarray) -> list[str]:
    """Recompute each agent's rows from its last visible snapshot before its late one (``late_us``) on, instead of
    from its whole history: that snapshot P and the row the agent was in at P (its anchor: of the rows opened by
    P's arrival or before, the last) are the state the fold resumes from; the anchor and every row opened after P
    are deleted and folded again. P is looked for at most ``LATE_LOOKBACK_US`` back; returns the agents this
    cannot serve (no P in that window, or no consistent anchor), for a full ``rebuild``."""
    agents = agent_ids.tolist()
    late_of = pd.Series(np.asarray(late_us, dtype=np.int64), index=agents)
    unanchored: list[str] = []
    for start in range(0, len(agents), REBUILD_AGENTS_PER_READ):
        batch = agents[start : start + REBUILD_AGENTS_PER_READ]
        found = _previous_snapshot_times(conn, batch, late_of.loc[batch].to_numpy())
        unanchored += [agent for agent in batch if agent not in found]
        if not found:
            continue
        batch = [agent for agent in batch if agent in found]
        snapshots = _read_snapshots(  # from the earliest P of the batch on (typically the run before the late one)
            conn, "AND s.agent_id IN :agents AND s.snapshot_at >= :lo", {"agents": batch, "lo": min(found.values())},
            sa.bindparam("agents", expanding=True),
        )
        late = late_of.reindex(snapshots["agent_id"]).to_numpy()
        before = snapshots["at_us"] < late  # per agent a prefix: sorted by time
        n = len(before)
        following = np.zeros(n, dtype=bool)
        following[:-1] = before[1:] & (snapshots["agent_id"][1:] == snapshots["agent_id"][:-1])
        previous = np.flatnonzero(before & ~following)  # P: each agent's last snapshot before its late one
        p = pd.DataFrame({
            "agent_id": snapshots["agent_id"][previous], "at_us": snapshots["at_us"][previous],
            "chat_state": snapshots["chat_state"][previous],
            "reported_start_us": snapshots["reported_start_us"][previous],
            "interval_s": snapshots["interval_s"][previous],
        }).set_index("agent_id")
        anchors = _anchors(conn, p)
        served = anchors.index
        held = set(served)
        unanchored += [agent for agent in batch if agent not in held]
        if not len(served):
            continue
        m = _marker(conn.dialect.name)
        conn.exec_driver_sql(
            f"DELETE FROM {agent_state_interval_store.name} WHERE agent_id = {m} AND (opened_at_us > "
            f"{m} OR (opened_at_us = {m} AND started_at_us >= {m}))",
            [(agent, int(row.opened_at_us), int(row.opened_at_us), int(row.started_at_us))
             for agent, row in anchors.iterrows()],
        )
        resumed = {
            "agent_id": np.asarray(served, dtype=object),
            "chat_state_code": anchors["chat_state_code"].to_numpy(dtype=object),
            "chat_state": anchors["chat_state"].to_numpy(dtype=object),
            "agent_group_id": anchors["agent_group_id"].to_numpy(dtype=object),
            "started_at_us": anchors["started_at_us"].to_numpy(dtype=np.int64),
            "started_shown_us": anchors["started_shown_us"].to_numpy(dtype=np.int64),
            "last_at_us": p.loc[served, "at_us"].to_numpy(dtype=np.int64),
            "last_reported_start_us": p.loc[served, "reported_start_us"].to_numpy(dtype=np.int64),
            "last_interval_s": p.loc[served, "interval_s"].to_numpy(dtype=np.int64),
            "opened_at_us": anchors["opened_at_us"].to_numpy(dtype=np.int64),
        }
        again = ~before & np.isin(snapshots["agent_id"], np.asarray(served, dtype=object))
        closed, opened = fold(resumed, {name: values[again] for name, values in snapshots.items()})
        _write(conn, closed, opened)
    return unanchored


_PREVIOUS = """
SELECT s.snapshot_at FROM agent_state_snapshot AS s LEFT JOIN snapshot_run AS r ON r.snapshot_id = s.snapshot_id
WHERE s.agent_id = :agent AND s.snapshot_at < :before AND s.snapshot_at >= :floor
    AND (r.status IS NULL OR r.status <> 'failed')
ORDER BY s.snapshot_at DESC LIMIT 1
"""


def _previous_snapshot_times(conn: sa.Connection, agents: list[str], late_us: np.ndarray) -> dict[str, Any]:
    """Per agent, the stored ``snapshot_at`` (as the driver returns it) of its last visible snapshot before its late
    one and within ``LATE_LOOKBACK_US`` of it: one seek in ``(agent_id, snapshot_at)`` per agent."""
    statement = sa.text(_PREVIOUS).bindparams(
        sa.bindparam("before", type_=UtcDateTime()), sa.bindparam("floor", type_=UtcDateTime())
    )
    times = np.asarray(late_us, dtype=np.int64)
    before = times.astype("datetime64[us]").astype(object)
    floor = (times - LATE_LOOKBACK_US).astype("datetime64[us]").astype(object)
    found: dict[str, Any] = {}
    for agent, upper, lower in zip(agents, before, floor, strict=True):
        at = conn.execute(statement, {"agent": agent, "before": upper, "floor": lower}).scalar()
        if at is not None:
            found[agent] = at
    return found


_ANCHORS = """
SELECT agent_id, chat_state_code, chat_state, agent_group_id, observed, started_at_us,
    EPOCH_US(started_at) AS started_shown_us, ended_at_us, opened_at_us
FROM agent_state_interval_store
UNION ALL
SELECT agent_id, chat_state_code, chat_state, agent_group_id, TRUE AS observed, started_at_us, started_shown_us,
    last_at_us AS ended_at_us, opened_at_us
FROM agent_state_open
"""


def _anchors(conn: sa.Connection, previous: pd.DataFrame) -> pd.DataFrame:
    """Per agent of ``previous`` (indexed by agent: its snapshot P), the row it was in at P: of its rows opened by
    P's arrival or before, the last (latest opener, then latest start), kept only if consistent (an observed row
    of P's state around P). Indexed by agent."""
    if previous.empty:
        return previous.iloc[0:0]
    sql = (f"SELECT * FROM ({_anchor_sql(sqlglot_dialect(conn.dialect.name))}) AS q "
           "WHERE q.agent_id IN :agents AND q.ended_at_us >= :lo")
    statement = sa.text(sql).bindparams(sa.bindparam("agents", expanding=True))
    fields = ("agent_id", "chat_state_code", "chat_state", "agent_group_id", "observed", "started_at_us",
              "started_shown_us", "ended_at_us", "opened_at_us")
    rows = conn.execute(statement, {"agents": previous.index.tolist(), "lo": int(previous["at_us"].min())}).all()
    candidates = pd.DataFrame(columns_of(rows, fields))  # object columns stay objects (no NULL -> NaN floats)
    candidates["p_at_us"] = previous["at_us"].reindex(candidates["agent_id"]).to_numpy()
    candidates = candidates[candidates["opened_at_us"] <= candidates["p_at_us"]]
    chosen = candidates.sort_values(["agent_id", "opened_at_us", "started_at_us"]).groupby("agent_id").tail(1)
    chosen = chosen.set_index("agent_id")
    consistent = (
        chosen["observed"].astype(bool)
        & (chosen["started_at_us"] <= chosen["p_at_us"])
        & (chosen["ended_at_us"] >= chosen["p_at_us"])
        & (chosen["chat_state"] == previous["chat_state"].reindex(chosen.index))
    )
    return chosen[consistent]


@cache
def _anchor_sql(dialect: str) -> str:
    return render(_ANCHORS, dialect)


def _marker(dialect: str) -> str:
    """The driver's placeholder (sqlite3: ``?``; psycopg: ``%s``)."""
    return "?" if dialect == "sqlite" else "%s"


def rebuild(conn: sa.Connection, agent_ids: Iterable[str] | None = None) -> int:
    """Recompute the store rows and open state of ``agent_ids`` (every agent when None) from all of their visible
    snapshots, folding them in time order; returns how many agents hold rows afterwards."""
    _serialize(conn)
    if agent_ids is None:
        conn.execute(sa.delete(agent_state_interval_store))
        conn.execute(sa.delete(agent_state_open))
        # in the database's own order, so that each batch is exactly the agents its range selects (collations differ)
        agents = list(
            conn.execute(sa.text("SELECT DISTINCT agent_id FROM agent_state_snapshot ORDER BY agent_id")).scalars()
        )
        ranged = True
    else:
        agents = sorted(set(agent_ids))
        ranged = False
    batches = [agents[i : i + REBUILD_AGENTS_PER_READ] for i in range(0, len(agents), REBUILD_AGENTS_PER_READ)]
    if not ranged:
        for batch in batches:
            conn.execute(sa.delete(agent_state_interval_store).where(agent_state_interval_store.c.agent_id.in_(batch)))
            conn.execute(sa.delete(agent_state_open).where(agent_state_open.c.agent_id.in_(batch)))
    held = 0
    for batch in batches:
        if ranged:  # a range of the index (agent_id, snapshot_at, ...) rather than a list of hundreds of values
            snapshots = _read_snapshots(
                conn, "AND s.agent_id >= :lo AND s.agent_id <= :hi", {"lo": batch[0], "hi": batch[-1]}
            )
        else:
            snapshots = _read_snapshots(
                conn, "AND s.agent_id IN :agents", {"agents": batch}, sa.bindparam("agents", expanding=True)
            )
        closed, opened = fold(_empty(_OPEN_FIELDS), snapshots)
        _write(conn, closed, opened, fresh=True)
        held += len(opened["agent_id"])
    return held


def delete_before(conn: sa.Connection, cutoff_us: int) -> dict[str, int]:
    """Retention: the store rows that ended by ``cutoff_us`` and the open state of agents last seen before it."""
    _serialize(conn)
    rows = conn.execute(
        sa.delete(agent_state_interval_store).where(agent_state_interval_store.c.ended_at_us <= cutoff_us)
    ).rowcount
    agents = conn.execute(sa.delete(agent_state_open).where(agent_state_open.c.last_at_us < cutoff_us)).rowcount
    return {agent_state_interval_store.name: rows, agent_state_open.name: agents}


def _read_snapshots(
    conn: sa.Connection, condition: str, params: dict[str, Any], *binds: sa.BindParameter[Any]
) -> Columns:
    sql = f"{_snapshot_sql(sqlglot_dialect(conn.dialect.name))} {condition} ORDER BY s.agent_id, s.snapshot_at"
    statement = sa.text(sql).bindparams(*binds) if binds else sa.text(sql)
    return columns_of(conn.execute(statement, params).all(), _SNAPSHOT_FIELDS)


def _read_open(conn: sa.Connection) -> Columns:
    sql = f"SELECT {', '.join(_OPEN_FIELDS)} FROM {agent_state_open.name}"  # plain: no per-value processing
    return columns_of(conn.exec_driver_sql(sql).all(), _OPEN_FIELDS)


def _timestamps(us: np.ndarray, dialect: str) -> list:
    """The TIMESTAMP values of epoch microseconds as the driver takes them, bound as every warehouse write binds
    them (``warehouse.bind_values``: SQLite the text SQLAlchemy writes, which the views' ``TS_FROM_US`` also
    gives; PostgreSQL naive UTC datetimes)."""
    return bind_values(pa.array(np.asarray(us, dtype=np.int64)).cast(pa.timestamp("us")), dialect)


_STORE_COLUMNS = tuple(column.name for column in agent_state_interval_store.columns)
_OPEN_COLUMNS = tuple(column.name for column in agent_state_open.columns)


def _write(conn: sa.Connection, closed: Columns, opened: Columns, *, fresh: bool = False) -> None:
    """Insert the closed rows; insert or replace the open state of the agents in ``opened`` (``fresh``: none
    has one). Values go to the driver's executemany as tuples (SQLAlchemy's per-value processing would cost more
    than the whole state machine: a run writes every agent's open state)."""
    dialect = conn.dialect.name
    if len(closed["agent_id"]):
        start, end = closed["started_at_us"], closed["ended_at_us"]
        values = {
            "agent_id": closed["agent_id"].tolist(),
            "chat_state_code": closed["chat_state_code"].tolist(),
            "chat_state": closed["chat_state"].tolist(),
            "agent_group_id": closed["agent_group_id"].tolist(),
            "started_at": _timestamps(closed["started_shown_us"], dialect),
            "ended_at": _timestamps(closed["ended_shown_us"], dialect),
            "seconds": ((end - start) / 1e6).tolist(),
            "observed": closed["observed"].tolist(),
            "started_at_us": start.tolist(),
            "ended_at_us": end.tolist(),
            "opened_at_us": closed["opened_at_us"].tolist(),
        }
        _executemany(
            conn, _insert_sql(agent_state_interval_store.name, _STORE_COLUMNS, dialect), values, _STORE_COLUMNS
        )
    if len(opened["agent_id"]):
        values = {name: opened[name].tolist() for name in _OPEN_FIELDS}
        values["started_at"] = _timestamps(opened["started_shown_us"], dialect)
        values["last_snapshot_at"] = _timestamps(opened["last_at_us"], dialect)
        sql = _insert_sql(agent_state_open.name, _OPEN_COLUMNS, dialect)
        if not fresh:
            updated = ", ".join(f"{name} = excluded.{name}" for name in _OPEN_COLUMNS if name != "agent_id")
            sql += f" ON CONFLICT (agent_id) DO UPDATE SET {updated}"
        _executemany(conn, sql, values, _OPEN_COLUMNS)


def _insert_sql(table: str, columns: Sequence[str], dialect: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([_marker(dialect)] * len(columns))})"


def _executemany(conn: sa.Connection, sql: str, values: dict[str, list], columns: Sequence[str]) -> None:
    conn.exec_driver_sql(sql, list(zip(*(values[name] for name in columns), strict=True)))


# ----------------------------------------------------------------------------------------------------- reading
def current_rows_sql(dialect: str, start_us: int | None = None, end_us: int | None = None) -> str:
    """A SELECT (in ``dialect``) of the view's columns from the store: its closed rows and each agent's open row,
    all of them or those overlapping ``[start_us, end_us)`` (as ``ended_at_us > start AND started_at_us < end``,
    which the index on ``ended_at_us`` serves)."""
    dialect = sqlglot_dialect(dialect)
    if start_us is None or end_us is None:
        closed_where = open_where = ""
    else:
        start_us, end_us = int(start_us), int(end_us)
        closed_where = f" WHERE ended_at_us > {start_us} AND started_at_us < {end_us}"
        open_where = f" WHERE last_at_us > {start_us} AND started_at_us < {end_us}"
    true = "TRUE" if dialect != "sqlite" else "1"
    double = "DOUBLE PRECISION" if dialect == "postgres" else "DOUBLE" if dialect == "duckdb" else "REAL"
    return (
        "SELECT agent_id, chat_state_code, chat_state, agent_group_id, started_at, ended_at, seconds, observed, "
        f"started_at_us, ended_at_us FROM agent_state_interval_store{closed_where} "
        "UNION ALL "
        "SELECT agent_id, chat_state_code, chat_state, agent_group_id, started_at, last_snapshot_at AS ended_at, "
        f"CAST(last_at_us - started_at_us AS {double}) / CAST(1000000 AS {double}) AS seconds, {true} AS observed, "
        f"started_at_us, last_at_us AS ended_at_us FROM agent_state_open{open_where}"
    )


# ------------------------------------------------------------------------------------------------ command line
def build(url: str, wait_s: float = 600.0) -> int:
    """Rebuild the whole store of the warehouse at ``url`` from its snapshots, holding the writer lock (so that
    no run finishes meanwhile); returns the agents held. For a warehouse with a long history: build it ahead of
    the first run after the upgrade, which would otherwise build it in its own transaction."""
    from pipelines.storage.lock import writer_lock
    from pipelines.storage.warehouse import Warehouse

    warehouse = Warehouse(url)
    try:
        warehouse.migrate()
        with writer_lock(warehouse, wait_s) as acquired:
            if not acquired:
                raise TimeoutError(f"the warehouse writer lock stayed taken for {wait_s:.0f} s")
            with warehouse.begin() as conn:
                return rebuild(conn)
    finally:
        warehouse.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import os
    import time

    from pipelines.resources import DEFAULT_WAREHOUSE_URL

    parser = argparse.ArgumentParser(description="Build the persisted intervals from the warehouse's snapshots.")
    # from the environment by default, like every run: a PostgreSQL URL holds a password (never on a command line)
    parser.add_argument(
        "warehouse_url",
        nargs="?",
        default=os.environ.get("WAREHOUSE_URL", DEFAULT_WAREHOUSE_URL),
        help="default: $WAREHOUSE_URL, else sqlite:///data/warehouse.db",
    )
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the writer lock")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    agents = build(args.warehouse_url, args.wait)
    print(f"built the persisted intervals of {agents} agents in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
