"""Dead-letter replay against the real simulator over HTTP, real SQLite (and PostgreSQL) and real Parquet files.

The "parser bug" is honest: during the buggy runs the client's parser is replaced by one that rejects a shape the
API really serves (``url`` events in a chat; Offline agents in ``availableAgents``), so the live run dead-letters
those bodies exactly as it would a real parser gap; the real parser is back for the replay (the "fix").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipelines import normalize
from pipelines.ingest import SnapshotRunner, run_snapshot
from pipelines.liveperson import client as client_module
from pipelines.liveperson import parse
from pipelines.liveperson.errors import PayloadError
from pipelines.liveperson.records import AgentSessionInfo, AvailableAgentsPage, ChatResource
from pipelines.maintenance.replay import replay_dead_letters
from pipelines.maintenance.replay_land import ChatLanding, DeadLetter, interpret
from pipelines.reporting import daily
from pipelines.storage import schema
from pipelines.storage.compaction import compact_partition
from pipelines.storage.lock import writer_lock
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse
from tests.fixtures.simulator import open_agent_session
from tests.reliability.support import compare_with_truth, pipeline_connection

REPLAYED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def rejecting_url_events(payload: Any, *, chat_id: str, endpoint: str | None = None) -> ChatResource:
    """The bug: ``url`` events (undocumented by the Chat Agent API) taken for an unknown shape."""
    resource = parse.parse_chat(payload, chat_id=chat_id, endpoint=endpoint)
    if any(event.event_type == "url" for event in resource.events):
        raise PayloadError("unknown event type 'url'", endpoint=endpoint or f"chat/{chat_id}", status=None,
                           body=orjson.dumps(payload))  # fmt: skip
    return resource


def rejecting_offline_agents(payload: Any, *, endpoint: str = "availableAgents") -> AvailableAgentsPage:
    """The bug: an Offline agent's ``elapsedTimeInState`` "0" taken for a malformed agent."""
    page = parse.parse_available_agents(payload, endpoint=endpoint)
    if any(agent.chat_state_code == 1 for agent in page.agents):
        raise PayloadError("an agent with elapsed 0", endpoint=endpoint, status=None, body=orjson.dumps(payload))
    return page


@contextmanager
def parser_bug(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(client_module, "parse_chat", rejecting_url_events)
        patch.setattr(client_module, "parse_available_agents", rejecting_offline_agents)
        yield


@pytest.fixture
def pipeline(simulator, warehouse_url, tmp_path):
    warehouse = Warehouse(warehouse_url)
    parquet = ParquetStore(str(tmp_path / "parquet"))
    with pipeline_connection(simulator, tmp_path / "state") as connection:
        yield connection, warehouse, parquet
    warehouse.dispose()


def rows(warehouse: Warehouse, query: sa.Select) -> list[sa.Row]:
    with warehouse.engine.connect() as db:
        return db.execute(query).all()


def dead_letters(warehouse: Warehouse) -> list[sa.Row]:
    return rows(warehouse, sa.select(schema.TABLES["ingest_error"]).order_by("error_id"))


def cursors(warehouse: Warehouse) -> dict[str, tuple[int, int | None]]:
    sessions = schema.TABLES["chat_session"]
    query = sa.select(sessions.c.chat_id, sessions.c.next_from, sessions.c.last_event_id)
    return {row.chat_id: (int(row.next_from or 0), row.last_event_id) for row in rows(warehouse, query)}


def assert_never_behind(before: dict[str, tuple[int, int | None]], after: dict[str, tuple[int, int | None]]) -> None:
    for chat_id, (next_from, last_event_id) in before.items():
        assert after[chat_id][0] >= next_from, chat_id
        assert last_event_id is None or after[chat_id][1] >= last_event_id, chat_id


def assert_parquet_equals_sql_without_duplicates(warehouse: Warehouse, parquet: ParquetStore) -> None:
    """Every fact table: as many Parquet rows as SQL rows, and no key twice across its files."""
    for table in schema.FACT_TABLES:
        files = [pq.read_table(path) for path in parquet.fact_files(table)]
        keys = Counter(
            key
            for data in files
            for key in zip(*(data.column(name).to_pylist() for name in schema.KEYS[table]), strict=True)
        )
        (sql_rows,) = rows(warehouse, sa.select(sa.func.count()).select_from(schema.TABLES[table]))[0]
        assert sum(keys.values()) == sql_rows, table
        assert [key for key, n in keys.items() if n > 1] == [], table


def test_replay_lands_what_the_fixed_parser_reads_under_the_original_snapshot(pipeline, simulator, monkeypatch):
    connection, warehouse, parquet = pipeline
    with parser_bug(monkeypatch):
        buggy = run_snapshot(connection, warehouse, parquet)
    polled_at = simulator.clock.now()
    letters = dead_letters(warehouse)
    chat_letters = [letter for letter in letters if letter.endpoint.startswith("chat/")]
    assert buggy.status == "partial" and buggy.agents == 0
    assert [letter.endpoint for letter in letters if letter.endpoint == "availableAgents"] == ["availableAgents"]
    assert len(chat_letters) >= 3

    summary = replay_dead_letters(  # a few letters per lock hold: the batches between them must not matter
        warehouse, parquet, store_chat_text=False, clock=lambda: REPLAYED_AT, batch_size=3
    )

    assert (summary.replayed, summary.failing) == (len(letters), 0)
    assert {letter.replayed_at for letter in dead_letters(warehouse)} == {REPLAYED_AT}
    snapshots = schema.TABLES["agent_state_snapshot"]
    agents = rows(warehouse, sa.select(snapshots.c.snapshot_id, snapshots.c.snapshot_at))
    assert len(agents) == len(simulator.world.agents) == summary.rows["agent_state_snapshot"]
    assert set(agents) == {(buggy.snapshot_id, polled_at)}  # as if the buggy run had read them
    events = schema.TABLES["chat_event"]
    replayed_chats = sorted(letter.endpoint.removeprefix("chat/") for letter in chat_letters)
    landed = rows(warehouse, sa.select(events).where(events.c.chat_id.in_(replayed_chats)))
    assert {event.snapshot_id for event in landed} == {buggy.snapshot_id}
    assert len(landed) == summary.rows["chat_event"]
    served = {
        (chat_id, int(event["@id"])): event
        for chat_id in replayed_chats
        for event in simulator.truth.chat_events(chat_id, until=polled_at)
    }
    assert sorted((event.chat_id, event.event_id) for event in landed) == sorted(served)
    lines = [event for event in landed if event.event_type == "line"]
    assert lines
    for event in lines:  # text stays redacted: its length as served, not the length of the stored digits
        text = served[(event.chat_id, event.event_id)]["text"]
        assert event.text is None
        assert event.text_length == len(text)
        assert orjson.loads(event.raw_json)["text"] == len(text)
    figures = compare_with_truth(simulator, warehouse, exact=True)
    assert (figures["lost"], figures["cursor_ahead"], figures["cursor_behind"]) == (0, 0, 0), figures["bad_chats"]
    assert_parquet_equals_sql_without_duplicates(warehouse, parquet)

    simulator.clock.advance(60)  # the next live run polls on from the cursors the replay moved
    after = run_snapshot(connection, warehouse, parquet)
    assert after.status == "ok"
    figures = compare_with_truth(simulator, warehouse, exact=True)
    assert (figures["lost"], figures["duplicated"], figures["cursor_behind"]) == (0, 0, 0), figures["bad_chats"]
    assert_parquet_equals_sql_without_duplicates(warehouse, parquet)


def test_replay_after_live_runs_caught_up_and_replaying_again_never_duplicate_or_move_a_cursor_back(
    pipeline, simulator, monkeypatch
):
    connection, warehouse, parquet = pipeline
    with parser_bug(monkeypatch):
        buggy = run_snapshot(connection, warehouse, parquet)
    simulator.clock.advance(60)
    run_snapshot(connection, warehouse, parquet)  # fixed: re-polls the failed chats from their unmoved cursors
    before = cursors(warehouse)
    events_before = rows(warehouse, sa.select(sa.func.count()).select_from(schema.TABLES["chat_event"]))

    first = replay_dead_letters(warehouse, parquet, store_chat_text=False, clock=lambda: REPLAYED_AT)
    again = replay_dead_letters(warehouse, parquet, store_chat_text=False, clock=lambda: REPLAYED_AT)

    assert first.replayed == len(dead_letters(warehouse)) and first.failing == 0
    assert first.rows["chat_event"] == 0 and first.cursors_advanced == 0  # the live run had them already
    assert first.rows["agent_state_snapshot"] == len(simulator.world.agents)  # a snapshot nobody else could take
    assert (again.examined, again.replayed) == (0, 0)
    assert rows(warehouse, sa.select(sa.func.count()).select_from(schema.TABLES["chat_event"])) == events_before
    assert cursors(warehouse) == before
    snapshots = schema.TABLES["agent_state_snapshot"]
    query = sa.select(sa.func.count()).where(snapshots.c.snapshot_id == buggy.snapshot_id)
    assert rows(warehouse, query)[0][0] == len(simulator.world.agents)
    for _ in range(2):
        simulator.clock.advance(60)
        run_snapshot(connection, warehouse, parquet)
        assert_never_behind(before, current := cursors(warehouse))
        before = current
    figures = compare_with_truth(simulator, warehouse, exact=True)
    assert (figures["lost"], figures["duplicated"], figures["cursor_behind"]) == (0, 0, 0), figures["bad_chats"]
    assert_parquet_equals_sql_without_duplicates(warehouse, parquet)


def test_agent_snapshots_replayed_behind_later_runs_rebuild_the_persisted_intervals_as_the_view_says(
    pipeline, simulator, monkeypatch
):
    connection, warehouse, parquet = pipeline
    url = warehouse.url.render_as_string(hide_password=False)
    with parser_bug(monkeypatch):
        run_snapshot(connection, warehouse, parquet)  # its availableAgents is a dead letter
    for _ in range(2):
        simulator.clock.advance(60)
        run_snapshot(connection, warehouse, parquet)
    before = daily.intervals(url)
    assert before.equals(daily.intervals(url, from_snapshots=True))

    replay_dead_letters(warehouse, parquet, store_chat_text=False, clock=lambda: REPLAYED_AT)

    after = daily.intervals(url)  # every agent's first snapshot is now the replayed one, a minute earlier
    assert after.equals(daily.intervals(url, from_snapshots=True))
    assert sum(after["seconds"].to_pylist()) > sum(before["seconds"].to_pylist())  # untracked Offline starts then


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_only_what_now_parses_is_replayed_truncated_and_html_bodies_keep_their_original_error(
    pipeline, simulator, monkeypatch
):
    connection, warehouse, parquet = pipeline
    simulator.faults.set(endpoint="availableAgents", kind="html", status=200)
    simulator.faults.set(endpoint="chat/{chatId}", kind="truncate")
    unreadable = run_snapshot(connection, warehouse, parquet)
    simulator.faults.clear()
    simulator.clock.advance(60)
    with parser_bug(monkeypatch):  # the chats again from their unmoved cursors, now meeting the bug
        buggy = run_snapshot(connection, warehouse, parquet)
    letters = dead_letters(warehouse)
    kept = [letter for letter in letters if letter.snapshot_id == unreadable.snapshot_id]
    chats = sum(1 for letter in kept if letter.endpoint.startswith("chat/"))
    assert chats >= 3 and len(letters) > len(kept)

    summary = replay_dead_letters(warehouse, parquet, store_chat_text=False, clock=lambda: REPLAYED_AT)

    assert summary.replayed == len(letters) - len(kept)
    assert summary.still_failing == {"HTML page instead of JSON": 1, "truncated or malformed JSON": chats}
    after = dead_letters(warehouse)
    assert [letter for letter in after if letter.snapshot_id == unreadable.snapshot_id] == kept  # error as it was
    assert {letter.replayed_at for letter in kept} == {None}
    assert {letter.replayed_at for letter in after if letter.snapshot_id == buggy.snapshot_id} == {REPLAYED_AT}
    figures = compare_with_truth(simulator, warehouse, exact=True)
    assert (figures["lost"], figures["cursor_behind"]) == (0, 0), figures["bad_chats"]


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_a_compacted_day_is_compacted_again_with_the_replayed_rows(pipeline, simulator, monkeypatch):
    connection, warehouse, parquet = pipeline
    run_snapshot(connection, warehouse, parquet)
    simulator.clock.advance(60)
    with parser_bug(monkeypatch):
        buggy = run_snapshot(connection, warehouse, parquet)
    day = simulator.clock.now().date()
    for table in schema.FACT_TABLES:  # the closed day merged into compacted-* files, per-run files gone
        compact_partition(parquet, table, day)
    assert not (Path(parquet.root) / "agent_state_snapshot" / f"date={day}" / f"{buggy.snapshot_id}.parquet").exists()

    summary = replay_dead_letters(warehouse, parquet, store_chat_text=False, clock=lambda: REPLAYED_AT)

    assert summary.replayed > 0 and summary.parquet_deferred == []
    assert summary.parquet_recompacted == [f"agent_state_snapshot/date={day}", f"chat_event/date={day}"]
    for table in ("agent_state_snapshot", "chat_event"):
        names = [Path(path).name for path in parquet.fact_files(table)]
        assert names and all(name.startswith("compacted-") for name in names), names
    assert_parquet_equals_sql_without_duplicates(warehouse, parquet)


def rejecting_max_chats_as_text(payload: Any, *, endpoint: str = "info") -> AgentSessionInfo:
    """The bug: ``maxChats`` served as a string (``"-1"``) taken for a malformed info."""
    info = parse.parse_session_info(payload, endpoint=endpoint)
    if isinstance(payload["info"].get("maxChats"), str):
        raise PayloadError("maxChats is not a number", endpoint=endpoint, status=None, body=orjson.dumps(payload))
    return info


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_an_info_dead_letter_lands_the_availability_its_login_could_not_store(pipeline, simulator, monkeypatch):
    connection, warehouse, parquet = pipeline
    with monkeypatch.context() as patch:
        patch.setattr(client_module, "parse_session_info", rejecting_max_chats_as_text)
        buggy = run_snapshot(connection, warehouse, parquet)
    letters = dead_letters(warehouse)
    assert {letter.endpoint for letter in letters} == {"info"}
    availability = schema.TABLES["session_availability_snapshot"]
    assert rows(warehouse, sa.select(availability)) == []

    summary = replay_dead_letters(warehouse, parquet, store_chat_text=False, clock=lambda: REPLAYED_AT)

    assert (summary.replayed, summary.failing) == (len(letters), 0)  # one row per login; the other letters add none
    assert summary.rows["session_availability_snapshot"] == len(connection.client.sessions)
    served = set()
    for session in connection.client.sessions:  # what the availability step reads at that (paused) time
        agent_id = connection.client.info(session).agent_id
        state = connection.client.availability(session)
        served.add((buggy.snapshot_id, simulator.clock.now(), agent_id, state.chat, state.voice))
    assert set(rows(warehouse, sa.select(availability))) == served
    assert_parquet_equals_sql_without_duplicates(warehouse, parquet)


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_a_redacted_chat_body_lands_as_the_live_run_stores_the_served_one(pipeline, simulator):
    connection, warehouse, parquet = pipeline
    run_snapshot(connection, warehouse, parquet)
    sessions = schema.TABLES["chat_session"]
    chat_id, agent_id = rows(warehouse, sa.select(sessions.c.chat_id, sessions.c.monitored_by).limit(1))[0]
    session = next(s for s in connection.client.sessions if s.agent_id == agent_id)
    served = session.get(f"chat/{chat_id}", endpoint=f"chat/{chat_id}", params={"from": 0})
    live = parse.parse_chat(served, chat_id=chat_id)
    assert any(event.text for event in live.events) and live.info is not None and live.info.visitor_name
    runner = SnapshotRunner.for_connection(connection, warehouse, parquet, interval_s=60)
    at = simulator.clock.now()
    # the dead letter the live run would have written for this body, personal text replaced by its length
    stored = normalize.redact_payload_text(orjson.dumps(served), False)
    letter = DeadLetter("e1", "s1", f"chat/{chat_id}", 200, stored, at)

    landing = interpret(letter, store_text=False)

    assert isinstance(landing, ChatLanding)
    live_table = normalize.chat_event_table("s1", at, live.events, False)
    assert landing.event_table("s1", at).to_pylist() == live_table.to_pylist()
    assert landing.session_columns() == runner.chat_info_columns(live)


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_an_xml_dead_letter_takes_its_digits_for_lengths(pipeline, simulator):
    connection, warehouse, parquet = pipeline
    run_snapshot(connection, warehouse, parquet)
    sessions = schema.TABLES["chat_session"]
    chat_id, agent_id = rows(warehouse, sa.select(sessions.c.chat_id, sessions.c.monitored_by).limit(1))[0]
    index = next(i for i, session in enumerate(connection.client.sessions) if session.agent_id == agent_id)
    login = connection.settings.logins[index]  # a parallel session of the chat's agent, asking for XML
    http, url = open_agent_session(simulator, login.username, login.password, fmt="application/xml")
    with http:
        body = http.get(f"{url}/chat/{chat_id}", params={"v": 1, "from": 0})
    assert body.status_code == 200 and body.text.lstrip().startswith("<")
    served = simulator.truth.chat_events(chat_id, until=simulator.clock.now())
    at = simulator.clock.now()
    letter = DeadLetter("e1", "s1", f"chat/{chat_id}", 200, normalize.redact_payload_text(body.text, False), at)

    table = interpret(letter, store_text=False).event_table("s1", at)

    lengths = {int(e["@id"]): len(e["text"]) for e in served if "text" in e}
    assert lengths
    got = dict(zip(table.column("event_id").to_pylist(), table.column("text_length").to_pylist(), strict=True))
    assert {event_id: got[event_id] for event_id in lengths} == lengths
    assert table.column("text").null_count == table.num_rows


def test_replay_job_runs_in_process_and_says_what_it_replayed(simulator, tmp_path, monkeypatch):
    from pipelines.definitions import build_definitions

    url, root = f"sqlite:///{tmp_path / 'warehouse.db'}", str(tmp_path / "parquet")
    warehouse, parquet = Warehouse(url), ParquetStore(root)
    with pipeline_connection(simulator, tmp_path / "state") as connection, parser_bug(monkeypatch):
        run_snapshot(connection, warehouse, parquet)
    letters = len(dead_letters(warehouse))
    monkeypatch.setenv("WAREHOUSE_URL", url)
    monkeypatch.setenv("PARQUET_ROOT", root)
    defs = build_definitions({"WAREHOUSE_URL": url, "PARQUET_ROOT": root})
    job = defs.resolve_job_def("replay_job")
    assert defs.resolve_schedule_def("replay_schedule").default_status == dg.DefaultScheduleStatus.RUNNING
    quick = {"ops": {"replay_dead_letters_op": {"config": {"lock_wait_s": 0.0}}}}

    with writer_lock(warehouse, 0.0) as held:  # a snapshot run is writing: replay says so and leaves it all
        assert held
        busy = job.execute_in_process(run_config=quick, instance=dg.DagsterInstance.ephemeral())
    done = job.execute_in_process(run_config=quick, instance=dg.DagsterInstance.ephemeral())

    assert busy.success and done.success
    assert output_metadata(busy)["lock_busy"] is True and output_metadata(busy)["replayed"] == 0
    assert output_metadata(done)["replayed"] == letters and output_metadata(done)["still_failing"] == 0
    assert f"replayed {letters} of {letters} dead letters; 0 still fail" in output_metadata(done)["summary"]
    assert {letter.replayed_at is not None for letter in dead_letters(warehouse)} == {True}
    warehouse.dispose()


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (output,) = [event for event in result.all_events if event.event_type_value == "STEP_OUTPUT"]
    return {key: value.value for key, value in output.event_specific_data.metadata.items()}
