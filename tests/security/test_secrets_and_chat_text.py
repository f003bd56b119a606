"""Secrets and chat text: every byte a run leaves behind is scanned for every secret and every served chat text.

The runs: three library runs (``run_snapshot``) with faults switched on so that dead letters are written
(truncated, HTML and XML bodies, expired sessions), then ``snapshot_job`` through Dagster with its storage on disk,
pointed at the same simulator as a "real" account (``LP_BASE_URL``, ``LP_AGENT_LOGINS``) with faults on too.

Secrets are known because the simulator is the other side: the password is configured, and every login's bearer,
csrf, wsuk and ``Session_id`` cookie and every agent session's cookie is recorded as the simulator issues it.

Outputs scanned: every row of every warehouse table (decoded) and the SQLite files themselves (raw bytes, WAL
included), every Parquet file (raw bytes and decoded rows), everything under the Dagster instance folder (run and
event log databases, compute logs), the log records at DEBUG, and stdout/stderr. The session cache under
``LP_STATE_DIR`` is the documented exception: it is checked for owner-only modes instead.

Chat text rule: every ``text`` the simulator served for the chats the runs polled and every ``visitorName``,
skipping strings shorter than 8 characters (``ok``, ``thanks!``, ``Jane``, ``visitor``, ``guest`` could collide
with unrelated data). A text cut off by a truncated body is not looked for as a prefix.
"""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipelines.definitions import build_definitions
from pipelines.ingest import run_snapshot
from pipelines.liveperson.connect import connect
from pipelines.liveperson.simulator import SimClock, Simulator, WorldConfig
from pipelines.storage import schema
from pipelines.storage.parquet import ParquetStore
from pipelines.storage.warehouse import Warehouse
from tests.fixtures.simulator import BUSY_HOUR, open_agent_session

PASSWORD = "s3cret-Pa55word-known-to-the-test"
MIN_TEXT = 8


class IssuedSecrets:
    """Records each secret the simulator hands out (sessions expired later are removed from its own tables)."""

    def __init__(self, sim: Simulator) -> None:
        self.values: set[str] = {PASSWORD}
        login, open_session = sim.auth.login, sim.auth.open_agent_session

        def recording_login(body: object) -> Any:
            issued = login(body)
            self.values.update((issued.bearer, issued.csrf, issued.session_id, issued.wsuk))
            return issued

        def recording_open(issued: Any, now: Any) -> Any:
            session = open_session(issued, now)
            self.values.add(session.cookie)
            return session

        sim.auth.login = recording_login
        sim.auth.open_agent_session = recording_open


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(WorldConfig(seed=7, agents=50, password=PASSWORD), clock=SimClock(at=BUSY_HOUR, paused=True))
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


def all_bytes(folder: Path) -> bytes:
    return b"\n".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


def warehouse_text(warehouse: Warehouse) -> str:
    with warehouse.engine.connect() as conn:
        return "\n".join(repr(warehouse.read_table(conn, table).to_pylist()) for table in schema.TABLES)


def parquet_text(root: Path) -> str:
    return "\n".join(repr(pq.read_table(path).to_pylist()) for path in sorted(root.rglob("*.parquet")))


def served_chat_text(sim: Simulator, warehouse: Warehouse) -> set[str]:
    """Every line text and visitor name served for the chats the runs polled, at least MIN_TEXT long."""
    sessions = schema.TABLES["chat_session"]
    with warehouse.engine.connect() as conn:
        polled = conn.execute(sa.select(sessions.c.chat_id).where(sessions.c.last_event_id.is_not(None))).scalars()
        polled = list(polled)
    assert polled, "the runs polled no chat: nothing to check"
    found = set()
    for chat_id in polled:
        found.update(event["text"] for event in sim.truth.chat_events(chat_id) if isinstance(event.get("text"), str))
        found.add(sim.world.chat_info(chat_id, sim.clock.now())["visitorName"])
    return {value for value in found if len(value) >= MIN_TEXT}


def assert_owner_only(state_dir: Path) -> int:
    files = 0
    for path in state_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, (path, oct(mode))
        else:
            assert mode == 0o600, (path, oct(mode))
            files += 1
    return files


def test_no_secret_and_no_chat_text_reaches_any_table_file_log_or_dagster_storage(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd
) -> None:
    caplog.set_level(logging.DEBUG)
    issued = IssuedSecrets(sim)
    state, parquet_root, dagster_home = tmp_path / "state", tmp_path / "parquet", tmp_path / "dagster"
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    warehouse = Warehouse(warehouse_url)
    parquet = ParquetStore(str(parquet_root))
    statuses = []
    with connect(
        {"LP_STATE_DIR": str(state), "LP_SIMULATOR_LOGINS": "6", "LP_RETRY_BASE_S": "0"}, simulator=sim
    ) as conn:
        for faults in (
            [],
            [("chat/{chatId}", "truncate", 0.5), ("availableAgents", "html", 1.0), ("chatSessions", "xml", 0.5)],
            [("*", "expire_session", 0.2), ("chat/{chatId}", "html", 0.3), ("chat/availableSlots", "truncate", 1.0)],
        ):
            for endpoint, kind, probability in faults:
                sim.faults.set(endpoint=endpoint, kind=kind, probability=probability)
            statuses.append(run_snapshot(conn, warehouse, parquet).status)
            sim.faults.clear()
            sim.clock.advance(60)
    # Dagster: the same simulator as a configured account; faults on again so that the job writes dead letters
    logins = [{"username": u, "password": p} for u, p in sim.logins(6)]
    for name, value in {
        "LP_BASE_URL": sim.base_url, "LP_ACCOUNT_ID": sim.account_id, "LP_AGENT_LOGINS": orjson.dumps(logins).decode(),
        "LP_STATE_DIR": str(state), "LP_RETRY_BASE_S": "0", "WAREHOUSE_URL": warehouse_url,
        "PARQUET_ROOT": str(parquet_root),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    for name in ("LP_DOMAIN", "LP_USERNAME", "LP_PASSWORD", "LP_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    sim.faults.set(endpoint="chat/{chatId}", kind="truncate", probability=0.3)
    sim.faults.set(endpoint="*", kind="expire_session", probability=0.05)
    dagster_home.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        result = build_definitions().resolve_job_def("snapshot_job").execute_in_process(instance=instance)
    sim.faults.clear()
    assert result.success
    with warehouse.engine.connect() as db:
        dead_letters = db.execute(sa.select(sa.func.count()).select_from(schema.TABLES["ingest_error"])).scalar_one()
        runs = db.execute(sa.select(sa.func.count()).select_from(schema.TABLES["snapshot_run"])).scalar_one()
    assert runs == 4 and dead_letters > 0, (runs, dead_letters)
    assert "partial" in statuses

    layout = re.compile(r"[a-z_]+/(date=\d{4}-\d{2}-\d{2}/\d{8}T\d{6}Z-[0-9a-f]{8}|current)\.parquet")
    files = [str(path.relative_to(parquet_root)) for path in parquet_root.rglob("*") if path.is_file()]
    assert files and [name for name in files if not layout.fullmatch(name)] == []  # named by snapshot ids and dates

    captured = capfd.readouterr()
    outputs = {
        "warehouse rows": warehouse_text(warehouse).encode(),
        "warehouse files": b"\n".join(path.read_bytes() for path in tmp_path.glob("warehouse.db*")),
        "parquet files": all_bytes(parquet_root),
        "parquet rows": parquet_text(parquet_root).encode(),
        "dagster storage": all_bytes(dagster_home),
        "logs": "\n".join(record.getMessage() for record in caplog.records).encode(),
        "stdout/stderr": (captured.out + captured.err).encode(),
    }
    warehouse.dispose()
    secrets = sorted(issued.values)
    assert len(secrets) > 1 + 4 * 6, "fewer logins than monitored agents: the recording missed some"
    leaks = [(name, secret[:4]) for name, blob in outputs.items() for secret in secrets if secret.encode() in blob]
    texts = sorted(served_chat_text(sim, Warehouse(warehouse_url)))
    personal = [(name, text) for name, blob in outputs.items() for text in texts if text.encode() in blob]
    scanned = sum(len(blob) for blob in outputs.values())
    print(
        f"scanned {scanned} bytes in {len(outputs)} outputs ({', '.join(outputs)}), {dead_letters} dead letters; "
        f"secrets checked {len(secrets)}, found {len(leaks)}; chat texts checked {len(texts)}, found {len(personal)}"
    )
    assert leaks == []
    # control: the recorded values are the ones the pipeline held (the session cache, the exception, has them)
    assert any(secret.encode() in all_bytes(state) for secret in secrets)
    assert personal == []
    assert len(texts) >= 5
    assert assert_owner_only(state) >= 6  # the documented exception: owner-only


def test_a_bearer_given_by_the_environment_is_never_written_anywhere(sim: Simulator, tmp_path: Path) -> None:
    username = sim.logins(1)[0][0]
    manual, _ = open_agent_session(sim, username, PASSWORD)
    bearer = manual.headers["Authorization"].removeprefix("Bearer ")
    env = {"LP_BASE_URL": sim.base_url, "LP_ACCOUNT_ID": sim.account_id, "LP_BEARER_TOKEN": bearer,
           "LP_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    for _ in range(2):
        with connect(env) as conn:
            summary = run_snapshot(conn, warehouse, ParquetStore(str(tmp_path / "parquet")))
        assert summary.status == "ok"
    warehouse.dispose()
    assert sim.stats.logins(username) == 1  # ours: the bearer was used, no password exists here
    assert bearer.encode() not in all_bytes(tmp_path)
    assert_owner_only(tmp_path / "state")


def test_with_lp_store_chat_text_true_the_text_and_visitor_names_are_stored(sim: Simulator, tmp_path: Path) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    env = {"LP_STATE_DIR": str(tmp_path / "state"), "LP_SIMULATOR_LOGINS": "6", "LP_STORE_CHAT_TEXT": "true"}
    with connect(env, simulator=sim) as conn:
        run_snapshot(conn, warehouse, ParquetStore(str(tmp_path / "parquet")))
    stored = warehouse_text(warehouse)
    texts = served_chat_text(sim, warehouse)
    warehouse.dispose()
    assert texts and all(text in stored for text in texts)
