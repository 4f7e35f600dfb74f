"""The embedded store: SQLite holds ids, text, metadata and vectors; FAISS searches the vectors.

SQLite is the source of truth and every write is one SQLite transaction, so a crash leaves the
last committed state. The FAISS index is derived data: it is checkpointed to
`vectors-<generation>.faiss` (write to a temp file, then an atomic rename) and rebuilt from SQLite
whenever the checkpoint does not match the database's generation (after a crash, or after
another process wrote to the collection).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedstack.errors import CollectionError, InvalidInputError
from embedstack.store.analyzer import Analyzer
from embedstack.store.keyword_index import KeywordIndex
from embedstack.store.sqlite_filters import compile_filter, index_rows
from embedstack.store.vector_index import VectorIndex
from embedstack.types import Chunk, SourceRecord

DB_FILE = "embedstack.db"
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
-- Scalar metadata values, one row each, for indexed filtering (see filters.py).
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


def _id_list(ids: Sequence[Any]) -> str:
    """Pass any number of ids to SQLite as one JSON parameter (no host-parameter limit)."""
    return json.dumps(list(ids))


class LocalStore:
    """Vectors + rows + metadata in one folder, updated atomically."""

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
        self.dim = dim
        try:
            self._db = sqlite3.connect(self.folder / DB_FILE, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CollectionError(f"cannot open {self.folder / DB_FILE}: {exc}") from exc
        self.keywords = KeywordIndex(
            self._db, analyzer or Analyzer(), bm25_k1, bm25_b, bm25_document_weight
        )
        self._read_db: sqlite3.Connection | None = None
        self._index = VectorIndex(dim, index, hnsw_m=hnsw_m, ef_search=ef_search)
        self._generation = -1  # generation the in-memory index reflects
        self._checkpointed = -1
        self._sync_index()
        self._ensure_keyword_index()

    # ---- bookkeeping -------------------------------------------------------------------------

    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(value), key))

    def _checkpoint_path(self, generation: int) -> Path:
        return self.folder / f"vectors-{generation}.faiss"

    def _sync_index(self) -> None:
        """Make the in-memory index match the database (from a checkpoint if one fits)."""
        generation = self._meta("generation")
        if generation == self._generation:
            return
        checkpoint = self._checkpoint_path(generation)
        if checkpoint.exists():
            try:
                self._index.load(checkpoint)
                live = {row[0] for row in self._db.execute("SELECT vid FROM chunks")}
                self._index.mark_dead(set(self._index.ids().tolist()) - live)
                self._checkpointed = generation
            except (RuntimeError, ValueError):
                self._rebuild()  # an unreadable checkpoint is only a cache miss
        else:
            self._rebuild()
        self._generation = generation

    def _ensure_keyword_index(self) -> None:
        """(Re)build the keyword index of rows stored before it, or by another analyzer or version.

        The index is derived data: its signature is removed before the rebuild and written in
        the rebuild's transaction, so after a crash the next open simply rebuilds again.
        """
        wanted = self.keywords.signature
        found = self._db.execute("SELECT value FROM meta WHERE key = 'keyword_index'").fetchone()
        current = bool(found and found[0] == wanted)
        self.keywords.create(fresh=not current)
        if current:
            return
        with self._write():
            rows = self._db.execute("SELECT vid, text, metadata FROM chunks").fetchall()
            self.keywords.rebuild(rows)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('keyword_index', ?)", (wanted,))

    def _rebuild(self) -> None:
        self._index = VectorIndex(
            self.dim, self._index.kind, hnsw_m=self._index.hnsw_m, ef_search=self._index.ef_search
        )
        rows = self._db.execute("SELECT vid, vector FROM vectors ORDER BY vid").fetchall()
        if rows:
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, self.dim)
            self._index.add(ids, vectors)
        self._checkpointed = -1

    def flush(self) -> None:
        """Checkpoint the vector index so the next open skips the rebuild."""
        if self._checkpointed == self._generation or self._generation < 0:
            return
        target = self._checkpoint_path(self._generation)
        tmp = target.with_suffix(".faiss.tmp")
        self._index.save(tmp)
        os.replace(tmp, target)
        self._checkpointed = self._generation
        for old in self.folder.glob("vectors-*.faiss"):
            if old != target:
                old.unlink(missing_ok=True)

    def close(self) -> None:
        if self._db is None:
            return
        self.flush()
        self._db.close()
        self._db = None
        if self._read_db is not None:
            self._read_db.close()
            self._read_db = None

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
            txn.removed = self._delete_rows(ids)
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
            old = self.source(source.path)
            stale = [*(old.chunk_ids if old else ()), *source.chunk_ids]
            txn.removed = self._delete_rows(stale)
            self._insert_rows(txn, source.chunk_ids, texts, metadatas, vectors)
            self._db.execute(
                "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?)",
                (source.path, source.content_hash, source.recipe, source.format,
                 json.dumps(list(source.chunk_ids)), source.ingested_at),
            )  # fmt: skip
        return len(old.chunk_ids) if old else 0

    def remove_source(self, path: str) -> int:
        """Delete a file's chunks and its manifest entry; returns how many chunks went."""
        with self._write() as txn:
            old = self.source(path)
            if old is None:
                return 0
            txn.removed = self._delete_rows(old.chunk_ids)
            self._db.execute("DELETE FROM sources WHERE path = ?", (path,))
        return len(txn.removed)

    def source(self, path: str) -> SourceRecord | None:
        row = self._db.execute("SELECT * FROM sources WHERE path = ?", (path,)).fetchone()
        return SourceRecord.from_row(row) if row else None

    def sources(self) -> list[SourceRecord]:
        return [SourceRecord.from_row(r) for r in self._db.execute("SELECT * FROM sources")]

    def delete(self, ids: Sequence[str]) -> int:
        """Delete rows by id; returns how many existed."""
        with self._write() as txn:
            txn.removed = self._delete_rows(ids)
        return len(txn.removed)

    def _delete_rows(self, ids: Sequence[str]) -> np.ndarray:
        """Delete rows by id inside the current transaction; returns their vector ids."""
        in_list = "IN (SELECT value FROM json_each(?))"
        found = self._db.execute(f"SELECT vid FROM chunks WHERE id {in_list}", (_id_list(ids),))
        vids = [row[0] for row in found]
        for table in ("chunks", "vectors", "chunk_meta"):
            self._db.execute(f"DELETE FROM {table} WHERE vid {in_list}", (_id_list(vids),))
        self.keywords.remove(vids)
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
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        if vectors.shape != (len(ids), self.dim):
            raise InvalidInputError(
                f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}"
            )
        first = self._meta("next_vid")
        txn.added = np.arange(first, first + len(ids), dtype=np.int64)
        txn.vectors = vectors
        vids = txn.added.tolist()
        self._db.executemany(
            "INSERT INTO chunks (vid, id, text, metadata) VALUES (?, ?, ?, ?)",
            zip(vids, ids, texts, (json.dumps(m, ensure_ascii=False) for m in metadatas),
                strict=True),
        )  # fmt: skip
        self._db.executemany(
            "INSERT INTO vectors (vid, vector) VALUES (?, ?)",
            zip(vids, (v.tobytes() for v in vectors), strict=True),
        )
        self._db.executemany(
            "INSERT INTO chunk_meta (vid, key, kind, value) VALUES (?, ?, ?, ?)",
            (
                row
                for vid, meta in zip(vids, metadatas, strict=True)
                for row in index_rows(vid, meta)
            ),
        )
        self.keywords.add(vids, texts, metadatas)
        self._set_meta("next_vid", first + len(ids))

    def _write(self) -> _WriteTransaction:
        return _WriteTransaction(self)

    def _apply(self, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray | None) -> None:
        """Mirror a committed write in the in-memory index."""
        self._index.remove(removed)
        if vectors is not None:
            self._index.add(added, vectors)
        if self._index.dead_fraction > REBUILD_DEAD_FRACTION:
            self._rebuild()

    # ---- reads -------------------------------------------------------------------------------

    def count(self, filter: Mapping[str, Any] | None = None) -> int:
        select, params = compile_filter(filter)
        return self._db.execute(f"SELECT COUNT(*) FROM ({select})", params).fetchone()[0]

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Stored chunks for the ids that exist, in the order asked."""
        rows = self._db.execute(
            "SELECT id, text, metadata FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
            (_id_list(ids),),
        ).fetchall()
        by_id = {r[0]: Chunk(r[0], r[1], json.loads(r[2])) for r in rows}
        return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]

    def ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT id FROM chunks ORDER BY vid")]

    def allowed(self, filter: Mapping[str, Any] | None) -> np.ndarray | None:
        """The vector ids a metadata filter lets through (None: no filter, all of them)."""
        if not filter:
            return None
        select, params = compile_filter(filter)
        return np.array([r[0] for r in self._db.execute(select, params)], dtype=np.int64)

    def dense(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Top-k (vid, cosine) per query vector, among the `allowed` ids if given.

        A filter selects its candidate ids in SQL first and FAISS searches only among them, so
        k hits come back whenever k rows match (no post-filtering shortfall).
        """
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise InvalidInputError(
                f"query vectors must have dimension {self.dim}, got shape {queries.shape}"
            )
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        self._sync_index()
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
        return results

    def keyword(
        self, query: str, k: int, allowed: np.ndarray | None = None, *, concurrent: bool = False
    ) -> list[tuple[int, float]]:
        """Top-k (vid, BM25 score) for a query text, among the `allowed` ids if given.

        `concurrent=True` reads through a second, read-only connection, so the keyword search
        can run in a worker thread while this thread embeds the query and searches vectors
        (SQLite, ONNX Runtime and FAISS all release the GIL).
        """
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        if allowed is not None and not len(allowed):
            return []
        return self.keywords.search(query, k, allowed, self._reader() if concurrent else None)

    def _reader(self) -> sqlite3.Connection:
        if self._read_db is None:
            self._read_db = sqlite3.connect(
                self.folder / DB_FILE, isolation_level=None, timeout=30, check_same_thread=False
            )
            self._read_db.execute("PRAGMA query_only = ON")
        return self._read_db

    def vectors(self, vids: Sequence[int]) -> np.ndarray:
        """The stored vectors of `vids`, in that order (rows of zeros for unknown ids)."""
        rows = self._db.execute(
            "SELECT vid, vector FROM vectors WHERE vid IN (SELECT value FROM json_each(?))",
            (json.dumps([int(v) for v in vids]),),
        ).fetchall()
        found = {r[0]: np.frombuffer(r[1], dtype="<f4") for r in rows}
        out = np.zeros((len(vids), self.dim), dtype=np.float32)
        for row, vid in enumerate(vids):
            if vid in found:
                out[row] = found[vid]
        return out

    def _exact(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        sql = "SELECT vid, vector FROM vectors"
        params: tuple = ()
        if allowed is not None:
            sql += " WHERE vid IN (SELECT value FROM json_each(?))"
            params = (json.dumps(allowed.tolist()),)
        rows = self._db.execute(sql, params).fetchall()
        if not rows:
            return []
        vids = np.array([r[0] for r in rows], dtype=np.int64)
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, self.dim)
        scores = matrix @ query
        top = np.argsort(-scores, kind="stable")[:k]
        return [(int(vids[i]), float(scores[i])) for i in top]

    def chunks(self, vids: Sequence[int]) -> dict[int, Chunk]:
        """vid -> Chunk for the vids that exist (rows deleted meanwhile are left out)."""
        rows = self._db.execute(
            "SELECT vid, id, text, metadata FROM chunks "
            "WHERE vid IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted({int(v) for v in vids})),),
        ).fetchall()
        return {r[0]: Chunk(r[1], r[2], json.loads(r[3])) for r in rows}


class _WriteTransaction:
    """BEGIN IMMEDIATE … COMMIT, bumping the generation; the index changes only after commit.

    The body records what it changed (`removed`, `added`, `vectors`) for the index update.
    """

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.removed = np.empty(0, np.int64)
        self.added = np.empty(0, np.int64)
        self.vectors: np.ndarray | None = None

    def __enter__(self) -> _WriteTransaction:
        db = self.store._db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have written since we last looked: catch up first.
            self.store._sync_index()
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        store = self.store
        if exc_type is not None:
            store._db.execute("ROLLBACK")
            return
        generation = store._meta("generation") + 1
        store._set_meta("generation", generation)
        store._db.execute("COMMIT")
        store._apply(self.removed, self.added, self.vectors)
        store._generation = generation
