"""`compact`: reclaim the space deleted rows hold in the vector file, the index and SQLite.

The live rows are copied into the next epoch's vector file (temporary name, fsync, rename) and
renumbered 0..n-1 in every table with a `vid` column, in one SQLite transaction that also
records the new file in `meta`. A kill -9 before that COMMIT leaves the last committed state
(the new file is an orphan, overwritten by the next compact); after it, the old file and the
old epoch's index segments are only garbage, removed next. Then SQLite is VACUUMed. Searches
in other processes notice the new epoch and map no old vid onto a renumbered row.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedstack.store.migration import crash_point, fsync_path
from embedstack.store.vector_file import VECTOR_FILE_SUFFIX, VectorFile, vector_file_name

BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class CompactReport:
    rows: int  # live rows kept
    reclaimed_rows: int  # deleted rows dropped from the vector file
    bytes_before: int
    bytes_after: int

    def to_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "reclaimed_rows": self.reclaimed_rows,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
        }


def folder_bytes(folder: Path) -> int:
    """The bytes the store's files take (database, WAL, vector file, index files)."""
    names = ("embedstack.db", "embedstack.db-wal")
    return sum(
        p.stat().st_size
        for p in folder.iterdir()
        if p.is_file() and (p.name in names or p.name.startswith(("vectors-", "index-")))
    )


def vid_tables(db: sqlite3.Connection) -> list[str]:
    """Every table that refers to rows by vid (chunks, metadata, keyword tables, …)."""
    tables = [
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return [t for t in tables if any(c[1] == "vid" for c in db.execute(f"PRAGMA table_info({t})"))]


def compact_rows(db: sqlite3.Connection, folder: Path, dim: int) -> tuple[int, int]:
    """Rewrite the vector file without holes and renumber the rows, in one transaction (the
    caller holds this process's write lock). Returns (rows kept, rows reclaimed)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        epoch = int(db.execute("SELECT value FROM meta WHERE key = 'vector_epoch'").fetchone()[0])
        top = int(db.execute("SELECT value FROM meta WHERE key = 'next_vid'").fetchone()[0])
        live = np.array([r[0] for r in db.execute("SELECT vid FROM chunks ORDER BY vid")], np.int64)
        current = folder / vector_file_name(epoch)
        for stale in folder.glob(f"vectors-*{VECTOR_FILE_SUFFIX}*"):
            if stale.name != current.name:  # orphans of a compaction killed before COMMIT
                stale.unlink(missing_ok=True)
        source = VectorFile(current, dim).rows(top)
        target = folder / vector_file_name(epoch + 1)
        tmp = target.with_name(target.name + ".compacting")
        with open(tmp, "wb") as out:
            for start in range(0, len(live), BLOCK_ROWS):
                block = np.ascontiguousarray(source[live[start : start + BLOCK_ROWS]])
                out.write(block.tobytes())
            out.flush()
            os.fsync(out.fileno())
        crash_point("compact-file-written")
        os.replace(tmp, target)
        fsync_path(folder)
        db.execute("CREATE TEMP TABLE vid_map (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
        db.execute(
            "INSERT INTO vid_map SELECT vid, row_number() OVER (ORDER BY vid) - 1 FROM chunks"
        )
        for table in vid_tables(db):
            if table == "vid_map":
                continue
            db.execute(f"DELETE FROM {table} WHERE vid NOT IN (SELECT old FROM vid_map)")
            # Through negative numbers, so no new vid collides with a not yet renumbered one.
            db.execute(f"UPDATE {table} SET vid = -1 - (SELECT new FROM vid_map WHERE old = vid)")
            db.execute(f"UPDATE {table} SET vid = -1 - vid")
        db.execute("DROP TABLE temp.vid_map")
        db.execute("UPDATE meta SET value = ? WHERE key = 'vector_epoch'", (str(epoch + 1),))
        db.execute("UPDATE meta SET value = ? WHERE key = 'next_vid'", (str(len(live)),))
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
        crash_point("compact-before-commit")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        with contextlib.suppress(sqlite3.Error):
            db.execute("DROP TABLE IF EXISTS temp.vid_map")
        raise
    crash_point("compact-committed")
    current.unlink(missing_ok=True)
    for old in folder.glob(f"index-{epoch}-*.faiss"):
        old.unlink(missing_ok=True)
    with contextlib.suppress(sqlite3.Error):  # space back to the file system; best effort
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return len(live), top - len(live)
