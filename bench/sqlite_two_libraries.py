"""Why ``bench/sqlite_ingest.py``'s faster path (ADBC) is not wired into the pipeline: two SQLite libraries in one
process do not see each other's locks, and a write is lost.

ADBC's SQLite driver links its own copy of SQLite; Python's ``sqlite3`` (under SQLAlchemy) uses the system's. POSIX
advisory locks belong to the process, and closing ANY descriptor of a file drops all of the process's locks on it.
One SQLite library works around that (it defers such closes while it holds locks), but it cannot know about the
other copy's connections ("Multiple copies of SQLite linked into the same application", sqlite.org/howtocorrupt).

In WAL mode the write lock is a byte of the ``-shm`` file, which a library closes with its last connection to the
database. The trial: an ADBC connection opens a write transaction; the process's only stdlib connection to the
same file closes (as SQLAlchemy's pool closes its connections when it is disposed, or discards an invalidated
one); then another process tries to write. Done once without
the close (the control) and once with it. Needs the bench extra (``adbc-driver-sqlite``).

    python bench/sqlite_two_libraries.py
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import sqlite3, sys
other = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
try:
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES ('other process')")
    other.execute("COMMIT")
    print("wrote")
except sqlite3.OperationalError as error:
    print(f"blocked ({error})")
"""


def trial(path: str, close_stdlib_connection: bool) -> str:
    """What another process's write does while our ADBC connection holds a write transaction."""
    import adbc_driver_sqlite.dbapi as adbc

    stdlib = sqlite3.connect(path, isolation_level=None)
    stdlib.execute("SELECT count(*) FROM t").fetchall()  # the connection has the file open, as a pooled one has
    connection = adbc.connect(path, autocommit=True)
    cursor = connection.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    cursor.execute("INSERT INTO t VALUES ('ours')")
    if close_stdlib_connection:
        stdlib.close()
    outcome = subprocess.run([sys.executable, "-c", PROBE, path], capture_output=True, text=True, check=True)
    cursor.execute("COMMIT")
    cursor.close()
    connection.close()
    if not close_stdlib_connection:
        stdlib.close()
    return outcome.stdout.strip()


def main() -> None:
    path = str(Path(tempfile.mkdtemp(prefix="bench-two-sqlites-")) / "w.db")
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute("CREATE TABLE t (x TEXT)")
    setup.close()
    control = trial(path, close_stdlib_connection=False)
    hazard = trial(path, close_stdlib_connection=True)
    check = sqlite3.connect(path)
    rows = dict(check.execute("SELECT x, count(*) FROM t GROUP BY x").fetchall())
    integrity = check.execute("PRAGMA integrity_check").fetchone()[0]
    check.close()
    print("another process writes while our ADBC connection holds a write transaction:")
    print(f"  {'control (no stdlib connection closed):':48}{control}")
    print(f"  {'after the stdlib connection to the file closed:':48}{hazard}")
    print(f"rows in the file: ours {rows.get('ours', 0)} (2 committed), other process "
          f"{rows.get('other process', 0)} ({1 if hazard == 'wrote' else 0} committed); integrity_check: {integrity}")
    if hazard == "wrote" and rows.get("other process", 0) == 0:
        print("=> the other process's committed write is gone: it was overwritten by ours (a lost update)")


if __name__ == "__main__":
    main()
