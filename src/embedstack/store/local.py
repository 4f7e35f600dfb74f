"""The embedded store: SQLite holds ids, text, metadata and vectors; FAISS searches the vectors.

SQLite is the source of truth and every write is one SQLite transaction, so a crash leaves the
last committed state. The FAISS index is derived data: it is checkpointed to
`vectors-<generation>.faiss` (write to a temp file, then an atomic rename) and rebuilt from SQLite
whenever the checkpoint does not match the database's generation (after a crash, or after
another process wrote to the collection).

Threads: each thread reads through its own read-only connection (WAL: readers see the last
committed state and never wait for a writer); writes go through one writer connection, one
at a time. The in-memory FAISS index is shared under a readers–writer lock, held exclusively
only while a commit is applied to it. Opening writes nothing unless the database needs its
tables (a new collection) or its keyword index (an old one), so a read-only folder can be
searched.
"""

from __future__ import annotations

import contextlib
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
    CorruptCollectionError,
    EmbedstackError,
    InvalidInputError,
    ReadOnlyCollectionError,
    StorageError,
)
from embedstack.store.analyzer import Analyzer
from embedstack.store.base import KEYWORD, MANIFEST, Scored
from embedstack.store.filters import FilterNode
from embedstack.store.keyword_index import KeywordIndex
from embedstack.store.locking import ReadWriteLock
from embedstack.store.sqlite_filters import compile_sqlite, index_rows
from embedstack.store.vector_index import VectorIndex
from embedstack.types import Chunk, SourceRecord

log = logging.getLogger(__name__)

DB_FILE = "embedstack.db"
TABLES = ("meta", "chunks", "vectors", "chunk_meta", "sources")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    vid INTEGER PRIMARY KEY,          -- FAISS id; never reused, so HNSW tombstones stay valid
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL            -- JSON object
);
-- Apart from chunks so that scans of ids and metadata do not read past the vectors.
CREATE TABLE IF NOT EXISTS vectors (vid INTEGER PRIMARY KEY, vector BLOB NOT NULL);  -- float32 LE
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
REBUILD_DEAD_FRACTION = 0.25  # HNSW: rebuild the graph once this share of nodes is deleted
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
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_FILE
        self.dim = dim
        self.keywords = KeywordIndex(
            analyzer or Analyzer(), bm25_k1, bm25_b, bm25_document_weight
        )
        self._index = VectorIndex(dim, index, hnsw_m=hnsw_m, ef_search=ef_search)
        self._index_lock = ReadWriteLock()
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._immutable = False  # a read-only folder: readers open the file as immutable
        self._generation = -1  # generation the in-memory index reflects
        self._checkpointed = -1
        self._allowed_memo: dict[tuple[int, FilterNode], np.ndarray] = {}
        self._closed = False
        self._keyword_ready = True
        try:
            with self._sqlite_errors():
                if not self.path.exists() or not self._has_tables():
                    self._create_tables()
                self._ensure_keyword_index()
                with self._index_lock.writing():
                    self._sync_index(verify=True)
        except BaseException:
            self._close_connections()
            raise

    # ---- connections ---------------------------------------------------------------------

    def _connect(self, uri: str) -> sqlite3.Connection:
        db = sqlite3.connect(
            uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
        )
        with self._connections_lock:
            self._connections.append(db)
        return db

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (opened on first use)."""
        if self._closed:
            raise StorageError(f"the collection at {self.folder} is closed")
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._open_reader()
            self._local.db = db
        return db

    def _open_reader(self) -> sqlite3.Connection:
        """A connection that cannot write: `query_only` where the file is writable (so it can
        still tidy SQLite's -wal/-shm files on close), else read-only, else — in a read-only
        folder, where WAL's -shm file cannot be created — the file opened as immutable."""
        uri = "file:" + quote(str(self.path.absolute()))
        for mode in () if self._immutable else ("", "?mode=ro"):
            db = sqlite3.connect(uri + mode, uri=True, isolation_level=None,
                                 timeout=BUSY_TIMEOUT_S, check_same_thread=False)  # fmt: skip
            try:
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
                db.execute("PRAGMA query_only = ON")
            except sqlite3.OperationalError as exc:
                db.close()
                if "readonly" not in str(exc) and "unable to open" not in str(exc):
                    raise
                continue
            with self._connections_lock:
                self._connections.append(db)
            return db
        self._immutable = True
        return self._connect(uri + "?immutable=1")

    def _write_db(self) -> sqlite3.Connection:
        """The writer connection; fails with ReadOnlyCollectionError on a read-only folder."""
        if self._closed:
            raise StorageError(f"the collection at {self.folder} is closed")
        if self._writer is None:
            if self._immutable or (self.path.exists() and not os.access(self.path, os.W_OK)):
                raise ReadOnlyCollectionError(f"{self.folder} is read-only; it can only be read")
            try:
                db = self._connect("file:" + quote(str(self.path.absolute())))
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.OperationalError as exc:
                raise ReadOnlyCollectionError(
                    f"{self.folder} cannot be written ({exc}); it can only be read"
                ) from exc
            self._writer = db
        return self._writer

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        """SQLite's exceptions, as the one-line errors users get (no raw sqlite3 error)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise storage_error(exc, self.folder) from exc

    def _has_tables(self) -> bool:
        try:
            names = {
                row[0]
                for row in self._reader().execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return False
            raise
        return set(TABLES) <= names

    def _create_tables(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        db = self._write_db()
        db.executescript(SCHEMA)

    # ---- bookkeeping -------------------------------------------------------------------------

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str) -> int:
        return int(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: int) -> None:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(value), key))

    def _checkpoint_path(self, generation: int) -> Path:
        return self.folder / f"vectors-{generation}.faiss"

    def _sync_index(self, verify: bool = False) -> None:
        """Make the in-memory index match the database; hold `_index_lock` for writing.

        From a checkpoint of the same generation when one is there; otherwise the index is
        rebuilt from SQLite — and, on open (`verify`), the database is checked first, since a
        missing or disagreeing checkpoint is when damage would otherwise be served silently.
        """
        db = self._reader()
        generation = self._meta(db, "generation")
        if generation == self._generation:
            return
        checkpoint = self._checkpoint_path(generation)
        live = {row[0] for row in db.execute("SELECT vid FROM chunks")}
        loaded = False
        if checkpoint.exists():
            try:
                self._index.load(checkpoint)
                held = set(self._index.ids().tolist())
                loaded = live <= held  # a checkpoint missing live rows is not trusted
                if loaded:
                    self._index.mark_dead(held - live)
                    self._checkpointed = generation
            except (RuntimeError, ValueError):
                pass  # an unreadable checkpoint is only a cache miss
        if not loaded:
            if verify:
                self._quick_check(db)
            self._rebuild(db)
        self._generation = generation
        self._allowed_memo.clear()

    def _quick_check(self, db: sqlite3.Connection) -> None:
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise CorruptCollectionError(
                f"{self.path} is damaged ({problems[0]}); see `embedstack check {self.folder}`"
            )

    def _ensure_keyword_index(self) -> None:
        """(Re)build the keyword index of rows stored before it, or by another analyzer or version.

        The index is derived data: its signature is removed before the rebuild and written in
        the rebuild's transaction, so after a crash the next open simply rebuilds again.
        """
        wanted = self.keywords.signature
        found = self._reader().execute(
            "SELECT value FROM meta WHERE key = 'keyword_index'"
        ).fetchone()
        if found and found[0] == wanted:
            return
        try:
            db = self._write_db()
        except ReadOnlyCollectionError:
            self._keyword_ready = False  # dense search still works; keyword says why not
            return
        with self._write_lock:
            self.keywords.create(db, fresh=True)
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute("SELECT vid, text, metadata FROM chunks").fetchall()
                self.keywords.rebuild(db, rows)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('keyword_index', ?)", (wanted,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _rebuild(self, db: sqlite3.Connection) -> None:
        self._index = VectorIndex(
            self.dim, self._index.kind, hnsw_m=self._index.hnsw_m, ef_search=self._index.ef_search
        )
        rows = db.execute("SELECT vid, vector FROM vectors ORDER BY vid").fetchall()
        if rows:
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, self.dim)
            self._index.add(ids, vectors)
        self._checkpointed = -1

    def flush(self) -> None:
        """Checkpoint the vector index so the next open skips the rebuild.

        The checkpoint is only a cache of what SQLite holds, so failing to write it (a full
        disk, a read-only folder) is logged, not raised, and leaves no temporary file.
        """
        with self._index_lock.reading():
            if self._checkpointed == self._generation or self._generation < 0:
                return
            target = self._checkpoint_path(self._generation)
            tmp = target.with_suffix(".faiss.tmp")
            try:
                self._index.save(tmp)
                os.replace(tmp, target)
            except (OSError, RuntimeError) as exc:
                tmp.unlink(missing_ok=True)
                log.warning("could not checkpoint the vector index of %s: %s", self.folder, exc)
                return
            self._checkpointed = self._generation
        for old in self.folder.glob("vectors-*.faiss"):
            if old != target:
                old.unlink(missing_ok=True)

    def close(self) -> None:
        if self._closed:
            return
        if not self._immutable and os.access(self.folder, os.W_OK):
            self.flush()  # a cache file beside the database; never the database itself
        self._closed = True
        self._close_connections()

    def _close_connections(self) -> None:
        with self._connections_lock:
            # The writer last: the last connection to close checkpoints and removes SQLite's
            # -wal and -shm files, which a read-only connection cannot do.
            for db in sorted(self._connections, key=lambda db: db is self._writer):
                db.close()
            self._connections.clear()
        self._writer = None

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
        with self._write() as txn:
            old = self._source(txn.db, source.path)
            stale = [*(old.chunk_ids if old else ()), *source.chunk_ids]
            txn.removed = self._delete_rows(txn.db, stale)
            self._insert_rows(txn, source.chunk_ids, texts, metadatas, vectors)
            txn.db.execute(
                "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?)",
                (source.path, source.content_hash, source.recipe, source.format,
                 json.dumps(list(source.chunk_ids)), source.ingested_at),
            )  # fmt: skip
        return len(old.chunk_ids) if old else 0

    def remove_source(self, path: str) -> int:
        """Delete a file's chunks and its manifest entry; returns how many chunks went."""
        with self._write() as txn:
            old = self._source(txn.db, path)
            if old is None:
                return 0
            txn.removed = self._delete_rows(txn.db, old.chunk_ids)
            txn.db.execute("DELETE FROM sources WHERE path = ?", (path,))
        return len(txn.removed)

    def source(self, path: str) -> SourceRecord | None:
        with self._sqlite_errors():
            return self._source(self._reader(), path)

    @staticmethod
    def _source(db: sqlite3.Connection, path: str) -> SourceRecord | None:
        row = db.execute("SELECT * FROM sources WHERE path = ?", (path,)).fetchone()
        return SourceRecord.from_row(row) if row else None

    def sources(self) -> list[SourceRecord]:
        with self._sqlite_errors():
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
        for table in ("chunks", "vectors", "chunk_meta"):
            db.execute(f"DELETE FROM {table} WHERE vid {in_list}", (_id_list(vids),))
        self.keywords.remove(db, vids)
        return np.array(vids, dtype=np.int64)

    def _insert_rows(
        self,
        txn: _WriteTransaction,
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
        db.executemany(
            "INSERT INTO chunks (vid, id, text, metadata) VALUES (?, ?, ?, ?)",
            zip(vids, ids, texts, (json.dumps(m, ensure_ascii=False) for m in metadatas),
                strict=True),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO vectors (vid, vector) VALUES (?, ?)",
            zip(vids, (v.tobytes() for v in vectors), strict=True),
        )
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

    def _write(self) -> _WriteTransaction:
        return _WriteTransaction(self)

    def _apply(self, txn: _WriteTransaction, generation: int) -> None:
        """Mirror a committed write in the in-memory index; hold `_index_lock` for writing."""
        if txn.stale:  # another process wrote before this transaction: start from SQLite
            self._rebuild(self._reader())
        else:
            self._index.remove(txn.removed)
            if txn.vectors is not None:
                self._index.add(txn.added, txn.vectors)
            if self._index.dead_fraction > REBUILD_DEAD_FRACTION:
                self._rebuild(self._reader())
        self._generation = generation
        self._allowed_memo.clear()

    # ---- reads -------------------------------------------------------------------------------

    def count(self, where: FilterNode | None = None) -> int:
        with self._sqlite_errors():
            if where is None:
                return self._reader().execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            select, params = compile_sqlite(where)
            return self._reader().execute(f"SELECT COUNT(*) FROM ({select})", params).fetchone()[0]

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Stored chunks for the ids that exist, in the order asked."""
        with self._sqlite_errors():
            rows = self._reader().execute(
                "SELECT id, text, metadata FROM chunks "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (_id_list(ids),),
            ).fetchall()
        by_id = {r[0]: Chunk(r[0], r[1], json.loads(r[2])) for r in rows}
        return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]

    def ids(self) -> list[str]:
        with self._sqlite_errors():
            return [r[0] for r in self._reader().execute("SELECT id FROM chunks ORDER BY vid")]

    def _allowed(self, where: FilterNode | None) -> np.ndarray | None:
        """The vector ids a filter lets through (None: no filter), memoised per generation."""
        if where is None:
            return None
        key = (self._meta(self._reader(), "generation"), where)
        found = self._allowed_memo.get(key)
        if found is None:
            select, params = compile_sqlite(where)
            rows = self._reader().execute(select, params).fetchall()
            found = np.array([r[0] for r in rows], dtype=np.int64)
            if len(self._allowed_memo) >= ALLOWED_MEMO:
                self._allowed_memo.clear()
            self._allowed_memo[key] = found
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
        with self._sqlite_errors():
            self._catch_up()
            with self._index_lock.reading():
                allowed = self._allowed(where)
                if allowed is not None and not len(allowed):
                    return [[] for _ in queries]
                expected = min(k, len(allowed) if allowed is not None else len(self._index))
                scores, vids = self._index.search(queries, k, allowed)
            results = []
            for row, (row_scores, row_vids) in enumerate(zip(scores, vids, strict=True)):
                found = [
                    (int(v), float(s)) for v, s in zip(row_vids, row_scores, strict=True) if v >= 0
                ]
                if len(found) < expected:  # an approximate (HNSW) search came up short: go exact
                    found = self._exact(queries[row], k, allowed)
                results.append(found)
            return self._with_ids(results)

    def _catch_up(self) -> None:
        """Rebuild the index when another process has written since we last looked."""
        generation = self._meta(self._reader(), "generation")
        if generation != self._generation:
            with self._index_lock.writing():
                self._sync_index()

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
        with self._sqlite_errors():
            allowed = self._allowed(where)
            if allowed is not None and not len(allowed):
                return []
            found = self.keywords.search(self._reader(), query, k, allowed)
            return self._with_ids([found])[0]

    def _with_ids(self, results: list[list[tuple[int, float]]]) -> list[Scored]:
        """(vid, score) lists as (id, score) lists; rows deleted meanwhile drop out."""
        vids = sorted({vid for found in results for vid, _ in found})
        if not vids:
            return [[] for _ in results]
        rows = self._reader().execute(
            "SELECT vid, id FROM chunks WHERE vid IN (SELECT value FROM json_each(?))",
            (json.dumps(vids),),
        ).fetchall()
        names = dict(rows)
        return [[(names[v], s) for v, s in found if v in names] for found in results]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of `ids`, in that order (rows of zeros for unknown ids)."""
        with self._sqlite_errors():
            rows = self._reader().execute(
                "SELECT c.id, v.vector FROM chunks AS c JOIN vectors AS v ON v.vid = c.vid "
                "WHERE c.id IN (SELECT value FROM json_each(?))",
                (_id_list(ids),),
            ).fetchall()
        found = {r[0]: np.frombuffer(r[1], dtype="<f4") for r in rows}
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for row, id_ in enumerate(ids):
            if id_ in found:
                out[row] = found[id_]
        return out

    def _exact(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        sql = "SELECT vid, vector FROM vectors"
        params: tuple = ()
        if allowed is not None:
            sql += " WHERE vid IN (SELECT value FROM json_each(?))"
            params = (json.dumps(allowed.tolist()),)
        rows = self._reader().execute(sql, params).fetchall()
        if not rows:
            return []
        vids = np.array([r[0] for r in rows], dtype=np.int64)
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, self.dim)
        scores = matrix @ query
        top = np.argsort(-scores, kind="stable")[:k]
        return [(int(vids[i]), float(scores[i])) for i in top]

    # ---- checks ------------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Problems found by a full check: SQLite's integrity check, then the derived data
        (vectors, metadata rows, keyword index, manifest, FAISS checkpoint) against the rows."""
        problems: list[str] = []
        with self._sqlite_errors():
            db = self._reader()
            integrity = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if integrity != ["ok"]:
                return [f"SQLite integrity check: {line}" for line in integrity[:20]]
            chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            for table, what in (("vectors", "vectors"), ("keyword_chunks", "keyword entries")):
                count = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                if count != chunks:
                    problems.append(f"{chunks} chunks but {count} {what}")
            bad_size = db.execute(
                "SELECT COUNT(*) FROM vectors WHERE length(vector) != ?", (4 * self.dim,)
            ).fetchone()[0]
            if bad_size:
                problems.append(f"{bad_size} vectors are not {self.dim}-d")
            orphans = db.execute(
                "SELECT COUNT(*) FROM chunk_meta WHERE vid NOT IN (SELECT vid FROM chunks)"
            ).fetchone()[0]
            if orphans:
                problems.append(f"{orphans} metadata rows belong to no chunk")
            stored = set(self.ids())
            for record in self.sources():
                missing = [c for c in record.chunk_ids if c not in stored]
                if missing:
                    problems.append(
                        f"manifest entry {record.path} names {len(missing)} missing chunks"
                    )
            generation = self._meta(db, "generation")
            checkpoint = self._checkpoint_path(generation)
            if checkpoint.exists():
                try:
                    probe = VectorIndex(self.dim, self._index.kind)
                    probe.load(checkpoint)
                    live = {row[0] for row in db.execute("SELECT vid FROM chunks")}
                    if not live <= set(probe.ids().tolist()):
                        problems.append(
                            f"{checkpoint.name} lacks some stored vectors (rebuilt on open)"
                        )
                except (RuntimeError, ValueError) as exc:
                    problems.append(f"{checkpoint.name} is unreadable ({exc}; rebuilt on open)")
        return problems


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


class _WriteTransaction:
    """BEGIN IMMEDIATE … COMMIT, bumping the generation; the index changes only after commit.

    One writer per process at a time (`_write_lock`); other processes wait on SQLite's lock.
    The body records what it changed (`removed`, `added`, `vectors`) for the index update.
    """

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.removed = np.empty(0, np.int64)
        self.added = np.empty(0, np.int64)
        self.vectors: np.ndarray | None = None
        self.stale = False  # another process wrote since our index was built

    def __enter__(self) -> _WriteTransaction:
        store = self.store
        store._write_lock.acquire()
        try:
            with store._sqlite_errors():
                self.db = store._write_db()
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    self.generation = store._meta(self.db, "generation")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
        except BaseException:
            store._write_lock.release()
            raise
        self.stale = self.generation != store._generation
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        store = self.store
        try:
            if exc_type is not None:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise storage_error(exc, store.folder) from exc
                return
            with store._sqlite_errors():
                try:
                    store._set_meta(self.db, "generation", self.generation + 1)
                    with store._index_lock.writing():
                        self.db.execute("COMMIT")
                        store._apply(self, self.generation + 1)
                except sqlite3.Error:
                    self._rollback()
                    raise
        finally:
            store._write_lock.release()

    def _rollback(self) -> None:
        if self.db.in_transaction:
            # SQLite may have rolled back already (a failed COMMIT on a full disk).
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
