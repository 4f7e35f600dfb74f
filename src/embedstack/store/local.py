"""The embedded store: SQLite holds ids, text and metadata; the float vectors live once, in an
append-only file read by memory map (`vector_file.py`); FAISS segments search them
(`vector_index.py`).

SQLite is the source of truth and every write is one SQLite transaction, so a crash leaves the
last committed state: a write's vectors are written and fsynced inside the transaction, before
COMMIT, at offsets past the committed rows. The FAISS segments are derived data, saved
incrementally (`index-<epoch>-<lo>-<hi>.faiss`, only rows added since the last save) and
rebuilt from the vector file whenever a file is missing or lacks live rows. Collections made
before the vector file kept vectors in a SQLite table; they are migrated once, on the first
writable open (`migration.py`). `compact` (`compaction.py`) reclaims deleted rows.

Threads: each thread reads through its own read-only connection (WAL: readers see the last
committed state and never wait for a writer); writes go through one writer connection, one
at a time. The in-memory FAISS index is shared under a readers–writer lock, held exclusively
only while a commit is applied to it; a full rebuild (another process wrote, or an HNSW graph
is a quarter dead) is built outside the lock by one reader and swapped in. Opening writes
nothing unless the database needs its tables (a new collection) or its keyword index (an old
one), so a read-only folder can be searched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from embedstack.errors import (
    CollectionClosedError,
    CorruptCollectionError,
    EmbedstackError,
    InvalidInputError,
    ReadOnlyCollectionError,
    StorageError,
)
from embedstack.sqlite_threads import ClosedError, ThreadConnections
from embedstack.store.analyzer import Analyzer
from embedstack.store.base import KEYWORD, MANIFEST, FileRows, Scored
from embedstack.store.compaction import CompactReport, compact_rows, folder_bytes
from embedstack.store.filters import MATCH_ALL, FilterNode
from embedstack.store.keyword_index import KeywordIndex
from embedstack.store.locking import ReadWriteLock
from embedstack.store.migration import migrate, read_old_vectors
from embedstack.store.sqlite_filters import compile_sqlite, index_rows
from embedstack.store.vector_file import ArrayVectors, VectorFile, vector_file_name
from embedstack.store.vector_index import VectorIndex
from embedstack.types import Chunk, SourceRecord

log = logging.getLogger(__name__)

DB_FILE = "embedstack.db"
TABLES = ("meta", "chunks", "chunk_meta", "sources")
EPOCH = "vector_epoch"  # meta key: which vector file holds the rows (absent: the old layout)
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    vid INTEGER PRIMARY KEY,          -- FAISS id; never reused, so HNSW tombstones stay valid
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL            -- JSON object
);
-- Scalar metadata values, one row each, for indexed filtering (see sqlite_filters.py).
CREATE TABLE IF NOT EXISTS chunk_meta (
    vid INTEGER NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, value,
    PRIMARY KEY (vid, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_meta_lookup ON chunk_meta (key, kind, value);
-- The ingest manifest: which file produced which chunks, from which content.
CREATE TABLE IF NOT EXISTS sources (
    path TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,       -- sha256 of the file's bytes
    recipe TEXT NOT NULL,             -- chunking settings the chunks were made with
    format TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,          -- JSON list
    ingested_at REAL NOT NULL
);
INSERT OR IGNORE INTO meta VALUES ('generation', '0'), ('next_vid', '0');
"""
BUSY_TIMEOUT_S = 30  # how long a write waits for another process's write to finish
ALLOWED_MEMO = 16  # compiled filters kept per generation (a search runs its filter twice)


def _id_list(ids: Sequence[Any]) -> str:
    """Pass any number of ids to SQLite as one JSON parameter (no host-parameter limit)."""
    return json.dumps(list(ids))


class LocalStore:
    """Vectors + rows + metadata in one folder, updated atomically; see the module docstring."""

    capabilities = frozenset({KEYWORD, MANIFEST})

    def __init__(
        self,
        folder: Path,
        dim: int,
        index: str = "flat",
        hnsw_m: int = 32,
        ef_search: int = 64,
        analyzer: Analyzer | None = None,
        bm25_k1: float = 0.9,
        bm25_b: float = 0.4,
        bm25_document_weight: float = 2.0,
        auto_threshold: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_FILE
        self.dim = dim
        self.keywords = KeywordIndex(analyzer or Analyzer(), bm25_k1, bm25_b, bm25_document_weight)
        self._kind, self._hnsw_m, self._ef_search = index, hnsw_m, ef_search
        self._auto_threshold = auto_threshold
        self._files: dict[int, VectorFile] = {}  # open vector files by epoch (memory maps)
        self._old_layout: VectorFile | None = None  # vectors still in SQLite, read-only folder
        self._index = self._empty_index(self._vector_file(0))
        self._index_lock = ReadWriteLock()  # the in-memory index: searches share, commits own
        self._write_lock = threading.Lock()  # one write transaction at a time in this process
        self._catch_up_lock = threading.Lock()  # one thread rebuilds; the others search on
        self._readers = ThreadConnections(self._open_reader)
        self._writer: sqlite3.Connection | None = None
        self._immutable = False  # a read-only folder: readers open the file as immutable
        self._generation = -1  # the database generation the in-memory index reflects
        self._checkpointed = -1
        self._allowed_memo: dict[tuple[int, FilterNode], np.ndarray] = {}
        self._rebuild_due = False  # an HNSW graph with too many tombstones
        # Writes committed while a reload runs: (generation, removed, added, vectors).
        self._pending: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]] | None = None
        self._keyword_ready = True
        try:
            with self._sqlite_errors():
                if not self.path.exists() or not self._has_tables():
                    self._create_tables()
                self._ensure_keyword_index()
                self._ensure_vector_file()
                self._index, self._generation, self._checkpointed = self._load_index(verify=True)
        except BaseException:
            self._readers.close(then=self._close_writer)
            raise

    # ---- connections ---------------------------------------------------------------------

    def _uri(self, mode: str = "") -> str:
        return "file:" + quote(str(self.path.absolute())) + mode

    @staticmethod
    def _connect(uri: str) -> sqlite3.Connection:
        # check_same_thread=False only so that close() may close every thread's connection;
        # each connection is used by one thread at a time.
        return sqlite3.connect(
            uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
        )

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (opened on first use)."""
        try:
            return self._readers.get()
        except ClosedError:
            raise CollectionClosedError(f"the collection at {self.folder} is closed") from None

    def _open_reader(self) -> sqlite3.Connection:
        """A connection that cannot write: `query_only` where the file is writable (so it can
        still tidy SQLite's -wal/-shm files on close), else read-only, else — in a read-only
        folder, where WAL's -shm file cannot be created — the file opened as immutable."""
        for mode in () if self._immutable else ("", "?mode=ro"):
            db = self._connect(self._uri(mode))
            try:
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
                db.execute("PRAGMA query_only = ON")
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                if "readonly" not in str(exc) and "unable to open" not in str(exc):
                    raise
        self._immutable = True
        return self._connect(self._uri("?immutable=1"))

    def _write_db(self) -> sqlite3.Connection:
        """The writer connection; ReadOnlyCollectionError on a read-only folder."""
        if self._writer is None:
            if self._immutable or (self.path.exists() and not os.access(self.path, os.W_OK)):
                raise ReadOnlyCollectionError(f"{self.folder} is read-only; it can only be read")
            db = self._connect(self._uri())
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error:
                db.close()
                raise
            self._writer = db
        return self._writer

    def _close_writer(self) -> None:
        """Closed last: the last connection to close checkpoints the WAL and removes SQLite's
        -wal and -shm files, which a read-only connection cannot do."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        """SQLite's exceptions, as the one-line errors users get (no raw sqlite3 error)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise storage_error(exc, self.folder) from exc

    @contextmanager
    def _operation(self) -> Iterator[None]:
        """Every public call: counted (close() waits for it), SQLite errors translated."""
        try:
            with self._readers.using(), self._sqlite_errors():
                yield
        except ClosedError:
            raise CollectionClosedError(f"the collection at {self.folder} is closed") from None

    def _has_tables(self) -> bool:
        found = self._reader().execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return set(TABLES) <= {row[0] for row in found}

    def _create_tables(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        db = self._write_db()
        old = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'vectors'").fetchone()
        db.executescript(SCHEMA)
        if not old:  # a new database starts in the vector-file layout
            db.execute(f"INSERT OR IGNORE INTO meta VALUES ('{EPOCH}', '0')")

    def _ensure_vector_file(self) -> None:
        """Move an old collection's vectors from SQLite into the vector file, once; a read-only
        folder is read in the old layout instead (held in memory)."""
        if self._epoch_of(self._reader()) is not None:
            return
        try:
            db = self._write_db()
        except ReadOnlyCollectionError:
            matrix = read_old_vectors(self._reader(), self.dim)
            self._old_layout = ArrayVectors(self.folder / DB_FILE, self.dim, matrix)
            return
        with self._write_lock:
            try:
                migrate(db, self.folder, self.dim)
            except OSError as exc:
                raise self._os_error(exc) from exc

    @staticmethod
    def _epoch_of(db: sqlite3.Connection) -> int | None:
        row = db.execute(f"SELECT value FROM meta WHERE key = '{EPOCH}'").fetchone()
        return int(row[0]) if row else None

    def _vector_file(self, epoch: int) -> VectorFile:
        """The vector file of `epoch`, opened once (its memory map is shared by all threads)."""
        if self._old_layout is not None:
            return self._old_layout
        found = self._files.get(epoch)
        if found is None:
            found = VectorFile(self.folder / vector_file_name(epoch), self.dim)
            self._files = {**{e: f for e, f in self._files.items() if e >= epoch - 1}, epoch: found}
        return found

    def _os_error(self, exc: OSError) -> EmbedstackError:
        if exc.errno == errno.ENOSPC:
            return StorageError(f"the disk holding {self.folder} is full; nothing was changed")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return ReadOnlyCollectionError(f"{self.folder} is read-only ({exc.strerror})")
        return StorageError(f"{self.folder}: {exc.strerror or exc}; nothing was changed")

    # ---- the in-memory index -----------------------------------------------------------------

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str) -> int:
        return int(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: int) -> None:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(value), key))

    def _empty_index(self, vectors: VectorFile) -> VectorIndex:
        return VectorIndex(
            self.dim,
            self._kind,
            vectors,
            hnsw_m=self._hnsw_m,
            ef_search=self._ef_search,
            auto_threshold=self._auto_threshold,
        )

    def _load_index(self, verify: bool = False) -> tuple[VectorIndex, int, int]:
        """(index, its generation, the generation saved on disk or -1), from one consistent
        read of the database; takes no lock, so searches go on meanwhile.

        Saved segments that hold every live row of their range are reused; the rest is encoded
        from the vector file. On open (`verify`) with nothing saved to trust, the database is
        checked first, since that is when damage would otherwise be served silently.
        """
        db = self._reader()
        db.execute("BEGIN")  # one snapshot for the generation, the rows and the file
        try:
            generation = self._meta(db, "generation")
            epoch = self._epoch_of(db) or 0
            top = self._meta(db, "next_vid")
            live = np.array([row[0] for row in db.execute("SELECT vid FROM chunks")], np.int64)
            if verify and not any(self.folder.glob(f"index-{epoch}-*.faiss")):
                self._quick_check(db)
        finally:
            db.execute("COMMIT")
        vectors = self._vector_file(epoch)
        try:
            vectors.rows(top)
        except OSError as exc:
            raise CorruptCollectionError(
                f"{vectors.path} lacks stored vectors ({exc}); see `embedstack check {self.folder}`"
            ) from None
        index = self._empty_index(vectors)
        index.build(live, top, None if self._old_layout else self.folder, epoch)
        return index, generation, -1 if index.dirty else generation

    def _quick_check(self, db: sqlite3.Connection) -> None:
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise CorruptCollectionError(
                f"{self.path} is damaged ({problems[0]}); see `embedstack check {self.folder}`"
            )

    def _catch_up(self) -> None:
        """Before a search: reload the index if the database moved on without it.

        When another process wrote (or an update of the index failed), this search waits for
        the reload: a reader sees the last committed write. When an HNSW graph merely carries
        too many tombstones, it is rebuilt in a background thread and searches go on with the
        current one meanwhile.
        """
        if self._behind():
            with self._catch_up_lock:
                if self._behind():
                    self._reload()
        elif self._rebuild_due and self._catch_up_lock.acquire(blocking=False):
            threading.Thread(
                target=self._rebuild_in_background, name="embedstack-index-rebuild", daemon=True
            ).start()

    def _behind(self) -> bool:
        """Whether the database holds commits the index lacks. Read under the index lock: a
        commit in this process updates both at once (else a reader that looked in between
        would take this process's own write for another's and reload for nothing)."""
        with self._index_lock.reading():
            return self._meta(self._reader(), "generation") != self._generation

    def _rebuild_in_background(self) -> None:
        try:
            with self._operation():  # close() waits for it
                self._reload()
        except Exception:  # the next search tries again; nothing is lost
            log.exception("rebuilding the vector index of %s failed", self.folder)
        finally:
            self._catch_up_lock.release()

    def _reload(self) -> None:
        """Load a fresh index from the database (outside the index lock: searches go on with
        the current one) and swap it in. Writes this process commits meanwhile are applied to
        both indexes, so the new one is complete when it is swapped in and a writer that never
        pauses cannot keep a reload from finishing. Hold `_catch_up_lock`."""
        with self._index_lock.writing():
            self._pending = []
        try:
            index, generation, checkpointed = self._load_index()
        except BaseException:
            with self._index_lock.writing():
                self._pending = None
            raise
        with self._index_lock.writing():
            for later, removed, added, vectors in self._pending:
                if later <= generation:
                    continue  # in the snapshot already
                index.remove(removed)
                if vectors is not None:
                    index.add(added, vectors)
                if later == generation + 1:  # else another process wrote in between
                    generation, checkpointed = later, -1
            self._pending = None
            self._index, self._generation, self._checkpointed = index, generation, checkpointed
            self._rebuild_due = index.rebuild_due
            self._allowed_memo.clear()

    def _ensure_keyword_index(self) -> None:
        """(Re)build the keyword index of rows stored before it, or by another analyzer or version.

        Dropping, creating and filling the tables is one transaction (SQLite's DDL is
        transactional), so a crash, or another process doing the same, leaves the old index
        or the new one; the signature is checked again once the write lock is held.
        """
        wanted = self.keywords.signature
        found = (
            self._reader().execute("SELECT value FROM meta WHERE key = 'keyword_index'").fetchone()
        )
        if found and found[0] == wanted:
            return
        try:
            db = self._write_db()
        except ReadOnlyCollectionError:
            self._keyword_ready = False  # dense search still works; keyword says why not
            return
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                found = db.execute("SELECT value FROM meta WHERE key = 'keyword_index'").fetchone()
                if not (found and found[0] == wanted):
                    self.keywords.create(db, fresh=True)
                    rows = db.execute("SELECT vid, text, metadata FROM chunks").fetchall()
                    self.keywords.rebuild(db, rows)
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('keyword_index', ?)", (wanted,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def flush(self) -> int:
        """Save what the index built in memory since the last save (new rows' segment, merges),
        so the next open skips encoding them; returns the bytes written.

        Only an index that is current with the database is saved. The index files are a cache
        of SQLite and the vector file, so failing to write them (a full disk, a read-only
        folder) is logged, not raised, and leaves no temporary file.
        """
        with self._operation(), self._index_lock.reading():
            generation = self._generation
            if self._checkpointed == generation or generation < 0 or self._old_layout:
                return 0
            db = self._reader()
            epoch = self._index.epoch
            if self._meta(db, "generation") != generation or self._epoch_of(db) != epoch:
                return 0  # another process wrote since: its index, not ours, is the current one
            try:
                written = self._index.save(self.folder, epoch)
            except (OSError, RuntimeError) as exc:
                log.warning("could not checkpoint the vector index of %s: %s", self.folder, exc)
                return 0
            self._checkpointed = generation
            return written

    def _finish_rebuild(self) -> None:
        """Before saving: wait for a background rebuild, and build an index that is due (an
        "auto" collection grown past its threshold), so the next open finds it on disk."""
        with self._operation(), self._catch_up_lock:
            if self._behind() or self._rebuild_due:
                try:
                    self._reload()
                except Exception:  # a cache: the next open builds it instead
                    log.exception("building the vector index of %s failed", self.folder)

    def compact(self) -> CompactReport:
        """Reclaim what deleted rows hold: the vector file rewritten without them, rows
        renumbered, index segments rebuilt, SQLite vacuumed (see `compaction.py`)."""
        before = folder_bytes(self.folder)
        with self._operation():
            with self._write_lock:
                db = self._write_db()
                try:
                    kept, reclaimed = compact_rows(db, self.folder, self.dim)
                except OSError as exc:
                    raise self._os_error(exc) from exc
            with self._catch_up_lock:
                self._reload()
        self.flush()
        return CompactReport(kept, reclaimed, before, folder_bytes(self.folder))

    def close(self) -> None:
        """Checkpoint the index, then close every connection once the calls in progress in
        other threads have finished (new calls get a clear error)."""
        if self._readers.closed:
            return
        if not self._immutable and os.access(self.folder, os.W_OK):
            with contextlib.suppress(StorageError):
                self._finish_rebuild()
                self.flush()  # cache files beside the database; never the database itself
        self._readers.close(then=self._close_writer)
        self._index.release()  # unmap the vector file now, not when garbage is collected
        self._files = {}

    # ---- writes --------------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> None:
        """Insert or replace rows by id, all or nothing."""
        with self._write() as txn:
            txn.removed = self._delete_rows(txn.db, ids)
            self._insert_rows(txn, ids, texts, metadatas, vectors)

    def replace_source(
        self,
        source: SourceRecord,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> int:
        """Swap a file's old chunks for new ones and record it in the manifest, all or nothing.

        One transaction per file is what makes an ingest crash-safe: after a kill, each file is
        either fully old or fully new. Returns how many old chunks were removed.
        """
        return self.replace_sources([FileRows(source, texts, metadatas, vectors)])[0]

    def replace_sources(self, files: Sequence[FileRows]) -> list[int]:
        """Several files in one transaction: their rows go in as one insert, with one fsync
        (2,000 one-chunk files: ~11 ms each when committed one by one)."""
        if not files:
            return []
        for file in files:  # before the transaction: a bad file fails the batch untouched
            shape = np.shape(file.vectors)
            if shape != (len(file.source.chunk_ids), self.dim):
                raise InvalidInputError(
                    f"{file.source.path}: expected vectors of shape "
                    f"({len(file.source.chunk_ids)}, {self.dim}), got {shape}"
                )
        with self._write() as txn:
            olds = [self._source(txn.db, file.source.path) for file in files]
            stale = [
                chunk_id
                for old, file in zip(olds, files, strict=True)
                for chunk_id in (*(old.chunk_ids if old else ()), *file.source.chunk_ids)
            ]
            txn.removed = self._delete_rows(txn.db, stale)
            self._insert_rows(
                txn,
                [chunk_id for file in files for chunk_id in file.source.chunk_ids],
                [text for file in files for text in file.texts],
                [meta for file in files for meta in file.metadatas],
                np.concatenate([file.vectors for file in files]),
            )
            txn.db.executemany(
                "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?)",
                [(s.path, s.content_hash, s.recipe, s.format, json.dumps(list(s.chunk_ids)),
                  s.ingested_at) for s in (file.source for file in files)],
            )  # fmt: skip
            txn.changed = True
        return [len(old.chunk_ids) if old else 0 for old in olds]

    def remove_source(self, path: str) -> int:
        """Delete a file's chunks and its manifest entry; returns how many chunks went."""
        with self._write() as txn:
            old = self._source(txn.db, path)
            if old is not None:
                txn.removed = self._delete_rows(txn.db, old.chunk_ids)
                txn.db.execute("DELETE FROM sources WHERE path = ?", (path,))
                txn.changed = True
        return len(txn.removed)

    def source(self, path: str) -> SourceRecord | None:
        with self._operation():
            return self._source(self._reader(), path)

    @staticmethod
    def _source(db: sqlite3.Connection, path: str) -> SourceRecord | None:
        row = db.execute("SELECT * FROM sources WHERE path = ?", (path,)).fetchone()
        return SourceRecord.from_row(row) if row else None

    def sources(self) -> list[SourceRecord]:
        with self._operation():
            return [
                SourceRecord.from_row(r) for r in self._reader().execute("SELECT * FROM sources")
            ]

    def delete(self, ids: Sequence[str]) -> int:
        """Delete rows by id; returns how many existed."""
        with self._write() as txn:
            txn.removed = self._delete_rows(txn.db, ids)
        return len(txn.removed)

    def _delete_rows(self, db: sqlite3.Connection, ids: Sequence[str]) -> np.ndarray:
        """Delete rows by id inside the current transaction; returns their vector ids."""
        in_list = "IN (SELECT value FROM json_each(?))"
        found = db.execute(f"SELECT vid FROM chunks WHERE id {in_list}", (_id_list(ids),))
        vids = [row[0] for row in found]
        if vids:
            for table in ("chunks", "chunk_meta"):
                db.execute(f"DELETE FROM {table} WHERE vid {in_list}", (_id_list(vids),))
            self.keywords.remove(db, vids)
        return np.array(vids, dtype=np.int64)

    def _insert_rows(
        self,
        txn: _Changes,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> None:
        """Insert new rows (ids not present) inside the current transaction."""
        db = txn.db
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        if vectors.shape != (len(ids), self.dim):
            raise InvalidInputError(
                f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}"
            )
        first = self._meta(db, "next_vid")
        txn.added = np.arange(first, first + len(ids), dtype=np.int64)
        txn.vectors = vectors
        vids = txn.added.tolist()
        try:
            db.executemany(
                "INSERT INTO chunks (vid, id, text, metadata) VALUES (?, ?, ?, ?)",
                zip(vids, ids, texts, (json.dumps(m, ensure_ascii=False) for m in metadatas),
                    strict=True),
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:  # the store's own callers check ids first
            raise InvalidInputError(f"ids must be unique and non-empty: {exc}") from exc
        epoch = self._epoch_of(db)
        if epoch is None:
            raise ReadOnlyCollectionError(f"{self.folder} needs migrating, which needs writing")
        txn.epoch = epoch
        try:  # inside the transaction: another process's writer waits on SQLite's lock
            self._vector_file(epoch).write(first, vectors)
        except OSError as exc:
            raise self._os_error(exc) from exc
        db.executemany(
            "INSERT INTO chunk_meta (vid, key, kind, value) VALUES (?, ?, ?, ?)",
            (
                row
                for vid, meta in zip(vids, metadatas, strict=True)
                for row in index_rows(vid, meta)
            ),
        )
        self.keywords.add(db, vids, texts, metadatas)
        self._set_meta(db, "next_vid", first + len(ids))

    @contextmanager
    def _write(self) -> Iterator[_Changes]:
        """BEGIN IMMEDIATE … COMMIT, bumping the generation; the index changes after COMMIT.

        One writer per process at a time; other processes wait on SQLite's lock. The body
        records what it changed (`removed`, `added`, `vectors`, `changed`); a write that
        changed nothing is rolled back instead (no fsync, no new generation for other
        processes to catch up with).
        """
        with self._operation(), self._write_lock:
            db = self._write_db()
            db.execute("BEGIN IMMEDIATE")
            try:
                txn = _Changes(db)
                generation = self._meta(db, "generation")
                stale = generation != self._generation  # another process wrote since
                yield txn
                if not txn.any():
                    db.execute("ROLLBACK")
                    return
                self._set_meta(db, "generation", generation + 1)
                with self._index_lock.writing():
                    db.execute("COMMIT")
                    self._apply(txn, generation + 1, stale)
            except BaseException:
                if db.in_transaction:
                    # SQLite may have rolled back already (a failed COMMIT on a full disk).
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise

    def _apply(self, txn: _Changes, generation: int, stale: bool) -> None:
        """Mirror a committed write in the in-memory index (`_index_lock` held for writing).

        Never raises: the write is committed, and SQLite has it. After another process's write
        (`stale`) the index still gets this write but stays behind, so the next search reloads
        it; a failed update marks it broken (-1) and the next search waits for the reload.
        """
        self._allowed_memo.clear()
        if self._pending is not None:  # a reload is under way: it applies this write too
            self._pending.append((generation, txn.removed, txn.added, txn.vectors))
        if txn.epoch is not None and txn.epoch != self._index.epoch:
            self._generation = -1  # another process compacted: reload before the next search
            return
        try:
            self._index.remove(txn.removed)
            if txn.vectors is not None:
                self._index.add(txn.added, txn.vectors)
        except Exception:  # e.g. MemoryError in FAISS: reloaded from SQLite on the next read
            log.exception("vector index of %s not updated; it is reloaded on next use", self.folder)
            self._generation = -1
            return
        if not stale:
            self._generation = generation
        self._rebuild_due = self._index.rebuild_due

    # ---- reads -------------------------------------------------------------------------------

    def count(self, where: FilterNode | None = None) -> int:
        with self._operation():
            db = self._reader()
            if where is None or where == MATCH_ALL:
                return db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            select, params = compile_sqlite(where)
            return db.execute(f"SELECT COUNT(*) FROM ({select})", params).fetchone()[0]

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Stored chunks for the ids that exist, in the order asked."""
        with self._operation():
            rows = (
                self._reader()
                .execute(
                    "SELECT id, text, metadata FROM chunks "
                    "WHERE id IN (SELECT value FROM json_each(?))",
                    (_id_list(ids),),
                )
                .fetchall()
            )
        by_id = {r[0]: Chunk(r[0], r[1], json.loads(r[2])) for r in rows}
        return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]

    def ids(self, where: FilterNode | None = None) -> list[str]:
        with self._operation():
            params: list[Any] = []
            if where is None or where == MATCH_ALL:
                sql = "SELECT id FROM chunks ORDER BY vid"
            else:
                select, params = compile_sqlite(where)
                sql = f"SELECT id FROM chunks WHERE vid IN ({select}) ORDER BY vid"
            return [r[0] for r in self._reader().execute(sql, params)]

    def _allowed(self, where: FilterNode | None) -> np.ndarray | None:
        """The vector ids a filter lets through (None: all), memoised per generation."""
        if where is None or where == MATCH_ALL:
            return None
        db = self._reader()
        db.execute("BEGIN")  # the generation and the selection from one snapshot
        try:
            key = (self._meta(db, "generation"), where)
            found = self._allowed_memo.get(key)
            if found is None:
                select, params = compile_sqlite(where)
                found = np.array([r[0] for r in db.execute(select, params)], dtype=np.int64)
                if len(self._allowed_memo) >= ALLOWED_MEMO:
                    self._allowed_memo.clear()
                self._allowed_memo[key] = found
        finally:
            db.execute("COMMIT")
        return found

    def dense(self, queries: np.ndarray, k: int, where: FilterNode | None = None) -> list[Scored]:
        """Top-k (id, cosine) per query vector, among the rows `where` lets through.

        A filter selects its candidate vector ids in SQL first and FAISS searches only among
        them, so k hits come back whenever k rows match (no post-filtering shortfall).
        """
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise InvalidInputError(
                f"query vectors must have dimension {self.dim}, got shape {queries.shape}"
            )
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        with self._operation():
            while True:  # once more only if a compaction renumbered the rows meanwhile
                self._catch_up()
                allowed = self._allowed(where)
                if allowed is not None and not len(allowed):
                    return [[] for _ in queries]
                with self._index_lock.reading():
                    expected = min(k, len(allowed) if allowed is not None else len(self._index))
                    scores, vids = self._index.search(queries, k, allowed)
                    epoch = self._index.epoch
                results = []
                for row, (row_scores, row_vids) in enumerate(zip(scores, vids, strict=True)):
                    found = [
                        (int(v), float(s))
                        for v, s in zip(row_vids, row_scores, strict=True)
                        if v >= 0
                    ]
                    if len(found) < expected:  # an approximate search came up short: go exact
                        found = self._exact(queries[row], k, allowed)
                    results.append(found)
                named = self._with_ids(results, epoch)
                if named is not None:
                    return named

    def keyword(self, query: str, k: int, where: FilterNode | None = None) -> Scored:
        """Top-k (id, BM25 score) for a query text, among the rows `where` lets through.

        Safe to run in a worker thread beside `dense` (its own connection; SQLite, ONNX
        Runtime and FAISS all release the GIL).
        """
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        if not self._keyword_ready:
            raise ReadOnlyCollectionError(
                f"the keyword index of {self.folder} needs rebuilding, which a read-only "
                "folder does not allow; search with mode='dense'"
            )
        with self._operation():
            while True:  # once more only if a compaction renumbered the rows meanwhile
                epoch = self._epoch_of(self._reader())
                allowed = self._allowed(where)
                if allowed is not None and not len(allowed):
                    return []
                found = self.keywords.search(self._reader(), query, k, allowed)
                named = self._with_ids([found], epoch)
                if named is not None:
                    return named[0]

    def _with_ids(
        self, results: list[list[tuple[int, float]]], epoch: int | None
    ) -> list[Scored] | None:
        """(vid, score) lists as (id, score) lists; rows deleted meanwhile drop out. None when
        the vids are of another epoch than the database's now (a compaction renumbered them)."""
        vids = sorted({vid for found in results for vid, _ in found})
        if not vids:
            return [[] for _ in results]
        db = self._reader()
        db.execute("BEGIN")
        try:
            if self._epoch_of(db) != epoch and self._old_layout is None:
                return None
            rows = db.execute(
                "SELECT vid, id FROM chunks WHERE vid IN (SELECT value FROM json_each(?))",
                (json.dumps(vids),),
            ).fetchall()
        finally:
            db.execute("COMMIT")
        names = dict(rows)
        return [[(names[v], s) for v, s in found if v in names] for found in results]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of `ids`, in that order (rows of zeros for unknown ids)."""
        with self._operation():
            for _attempt in range(3):
                db = self._reader()
                db.execute("BEGIN")  # the vids and the file they index, from one snapshot
                try:
                    epoch = self._epoch_of(db) or 0
                    top = self._meta(db, "next_vid")
                    rows = db.execute(
                        "SELECT id, vid FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
                        (_id_list(ids),),
                    ).fetchall()
                finally:
                    db.execute("COMMIT")
                try:
                    matrix = self._vector_file(epoch).rows(top)
                    break
                except FileNotFoundError:
                    continue  # a compaction replaced the file after the snapshot: read again
            else:
                raise StorageError(f"{self.folder}: the vector file keeps changing; try again")
        where = {row[0]: row[1] for row in rows}
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for row, id_ in enumerate(ids):
            if id_ in where:
                out[row] = matrix[where[id_]]
        return out

    def _exact(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """Exact top-k over the vector file (an approximate search came up short)."""
        with self._index_lock.reading():
            scores, vids = self._index._exact(query[None, :], k, allowed)
        return [(int(v), float(s)) for v, s in zip(vids[0], scores[0], strict=True) if v >= 0]

    # ---- checks ------------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Problems found by a full check: SQLite's integrity check, then the derived data
        (vectors, metadata rows, keyword index, manifest, FAISS checkpoint) against the rows."""
        with self._operation():
            db = self._reader()
            integrity = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if integrity != ["ok"]:
                return [f"SQLite integrity check: {line}" for line in integrity[:20]]
            db.execute("BEGIN")  # every count below from one snapshot
            try:
                return self._check_derived(db)
            finally:
                db.execute("COMMIT")

    def _check_derived(self, db: sqlite3.Connection) -> list[str]:
        problems: list[str] = []
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        for table, what in (("keyword_chunks", "keyword entries"),):
            if table not in tables:
                problems.append(f"the {table} table is missing")
                continue
            count = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            if count != chunks:
                problems.append(f"{chunks} chunks but {count} {what}")
        problems += self._check_vector_file(db)
        orphans = db.execute(
            "SELECT COUNT(*) FROM chunk_meta WHERE vid NOT IN (SELECT vid FROM chunks)"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} metadata rows belong to no chunk")
        stored = {row[0] for row in db.execute("SELECT id FROM chunks")}
        for row in db.execute("SELECT * FROM sources"):
            record = SourceRecord.from_row(row)
            missing = [c for c in record.chunk_ids if c not in stored]
            if missing:
                problems.append(f"manifest entry {record.path} names {len(missing)} missing chunks")
        return problems

    def _check_vector_file(self, db: sqlite3.Connection) -> list[str]:
        """The vector file against the rows (it must hold every vid below next_vid), and the
        saved index segments against the live rows."""
        epoch = self._epoch_of(db)
        if epoch is None:
            return ["the vectors are still in the old layout (migrated on a writable open)"]
        top = self._meta(db, "next_vid")
        path = self.folder / vector_file_name(epoch)
        stored = VectorFile(path, self.dim).stored_rows()
        if stored < top:
            return [f"{path.name} holds {stored} vectors, the database {top}"]
        live = np.array([row[0] for row in db.execute("SELECT vid FROM chunks")], np.int64)
        if len(live) and int(live.max()) >= top:
            return [f"chunks refer to vectors past next_vid ({top})"]
        index = self._empty_index(VectorFile(path, self.dim))
        index.set_rows(live, top)  # the rows only (nothing trained): to check the saved files
        return index.check_files(self.folder, epoch)


def storage_error(exc: sqlite3.Error, where: Path) -> EmbedstackError:
    """A one-line, actionable error for what SQLite reported about the collection at `where`."""
    message = str(exc)
    lowered = message.lower()
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return CorruptCollectionError(
            f"{where / DB_FILE} is damaged ({message}); see `embedstack check {where}`"
        )
    if "readonly" in lowered or "read-only" in lowered:
        return ReadOnlyCollectionError(f"{where} is read-only ({message}); it can only be read")
    if "disk is full" in lowered or "disk full" in lowered:
        return StorageError(f"the disk holding {where} is full; nothing was changed")
    if "locked" in lowered or "busy" in lowered:
        return StorageError(
            f"{where} is locked by another process's write (waited {BUSY_TIMEOUT_S} s); "
            "nothing was changed, try again"
        )
    return StorageError(f"{where}: {message}; nothing was changed")


class _Changes:
    """What one write transaction changed, for the in-memory index."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.removed = np.empty(0, np.int64)
        self.added = np.empty(0, np.int64)
        self.vectors: np.ndarray | None = None
        self.changed = False  # rows outside the index changed (the manifest)
        self.epoch: int | None = None  # the vector file the added rows went to

    def any(self) -> bool:
        return bool(len(self.removed) or len(self.added) or self.changed)
