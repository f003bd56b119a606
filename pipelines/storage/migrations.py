"""Applies the numbered SQL files in ``sql/migrations`` once each, in order, on SQLite and PostgreSQL.

Each file runs in one transaction together with its row in ``schema_migrations``, so a crash never leaves a
half-applied version. Two processes starting at once are serialized: on PostgreSQL by a transaction-scoped
advisory lock, on SQLite by ``BEGIN IMMEDIATE`` (the warehouse engine begins every transaction that way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_[A-Za-z0-9_]+\.sql$")
_ADVISORY_KEY = 0x4C505F4D4947  # "LP_MIG": an arbitrary constant shared by every migrating process.

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL
)
"""
_RECORD_VERSION = sa.text(
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (:version, :name, :at)"
).bindparams(sa.bindparam("at", type_=sa.DateTime()))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text(encoding="utf-8"))


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a misnamed or duplicated version is an error, not a skip."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations with version {version}: {found[version].path.name}, {path.name}")
        found[version] = Migration(version, path.stem, path)
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Split a script on ``;`` outside quotes and comments (the DB-API runs one statement per call)."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
            current.append("\n")
            continue
        if ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
            current.append(" ")
            continue
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote inside a literal
                        end += 2
                        continue
                    break
                end += 1
            current.append(sql[i : end + 1])
            i = end + 1
            continue
        if ch == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s]


def _serialize(conn: sa.Connection) -> None:
    """Hold the migration lock until this transaction ends (SQLite: BEGIN IMMEDIATE already holds it)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})


def _utc_now_naive() -> datetime:
    """Naive UTC, as every TIMESTAMP column holds (a server default would use the session time zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def applied_versions(conn: sa.Connection) -> set[int]:
    return {row[0] for row in conn.execute(sa.text("SELECT version FROM schema_migrations"))}


def migrate(engine: sa.Engine, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply every pending migration; returns the versions applied by this call (empty when up to date)."""
    with engine.begin() as conn:
        _serialize(conn)
        conn.execute(sa.text(_CREATE_LEDGER))
    applied: list[int] = []
    for migration in discover(directory):
        with engine.begin() as conn:
            _serialize(conn)
            if migration.version in applied_versions(conn):
                continue
            for statement in migration.statements():
                conn.exec_driver_sql(statement)
            conn.execute(
                _RECORD_VERSION,
                {"version": migration.version, "name": migration.name, "at": _utc_now_naive()},
            )
        applied.append(migration.version)
    return applied
