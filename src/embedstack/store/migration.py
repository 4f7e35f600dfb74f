"""Move an old collection's vectors out of SQLite's `vectors` table into the vector file, once.

Atomic by construction: the file is written under a temporary name, fsynced and renamed while
this process holds SQLite's write lock; then one transaction drops the table and records the
new layout in `meta` (and bumps the generation, so other processes reload). A kill before
that COMMIT leaves the old layout (the next open migrates again, overwriting the file); after
it, the new one. Space the table held is returned by a VACUUM afterwards.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import numpy as np

from embedstack.store.vector_file import ROW_DTYPE, vector_file_name

CRASH_ENV = "EMBEDSTACK_CRASH_AT"  # tests: kill -9 this process at the named point
BLOCK_ROWS = 50_000


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL at `name` when the tests ask for it (a real kill -9)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_old_vectors(db: sqlite3.Connection, dim: int) -> np.ndarray:
    """The old table as a (next_vid, dim) matrix (zeros for deleted vids)."""
    top = int(db.execute("SELECT value FROM meta WHERE key = 'next_vid'").fetchone()[0])
    matrix = np.zeros((top, dim), dtype=ROW_DTYPE)
    for vid, blob in db.execute("SELECT vid, vector FROM vectors"):
        if vid < top and len(blob) == dim * ROW_DTYPE.itemsize:
            matrix[vid] = np.frombuffer(blob, dtype=ROW_DTYPE)
    return matrix


def migrate(db: sqlite3.Connection, folder: Path, dim: int) -> bool:
    """Migrate if still needed (checked under the write lock); True when it did."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("SELECT 1 FROM meta WHERE key = 'vector_epoch'").fetchone():
            db.execute("ROLLBACK")
            return False  # another process migrated first
        top = int(db.execute("SELECT value FROM meta WHERE key = 'next_vid'").fetchone()[0])
        target = folder / vector_file_name(0)
        tmp = target.with_name(target.name + ".migrating")
        row_bytes = dim * ROW_DTYPE.itemsize
        with open(tmp, "wb") as out:
            out.truncate(top * row_bytes)  # deleted vids stay zero-filled holes
            rows = db.execute("SELECT vid, vector FROM vectors WHERE vid < ? ORDER BY vid", (top,))
            for vid, blob in rows:
                if len(blob) == row_bytes:
                    out.seek(vid * row_bytes)
                    out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        crash_point("migrate-file-written")
        os.replace(tmp, target)
        fsync_path(folder)
        crash_point("migrate-renamed")
        db.execute("DROP TABLE vectors")
        db.execute("INSERT INTO meta VALUES ('vector_epoch', '0')")
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    crash_point("migrate-committed")
    db.execute("VACUUM")  # hand the table's pages back to the file system
    return True
