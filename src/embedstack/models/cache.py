"""A persistent, bounded embedding cache: embedding an input the model has seen is a lookup.

Keyed by (model, backend, sha256 of the input's bytes): a text's UTF-8, an image's or a sound's
file content (the model says which, `item_bytes`). Text keys are the same as when the cache
hashed text directly, so caches written before still hit. Entries are written only after a
batch encodes successfully, in one transaction, so a failed encode leaves nothing half-written.
When the cache grows past `max_entries`, the least recently used entries are dropped.

The cache is only a cache (safe to delete), so it never stops encoding: a file that is not a
database or is damaged is deleted and created again, and a cache that cannot be opened or
written (a read-only folder, a full disk) is turned off with one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from embedstack.errors import InvalidInputError
from embedstack.models.base import (
    TOKEN_EMBEDDINGS,
    TOKENIZER,
    WORD_VECTORS,
    BaseEmbeddingModel,
    EmbeddingModel,
    WordVectorModel,
    as_token_embedder,
    as_tokenized,
    as_word_vectors,
)
from embedstack.models.inputs import as_text_list
from embedstack.sqlite_threads import ClosedError, ThreadConnections

SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    namespace TEXT NOT NULL,      -- model|backend
    digest BLOB NOT NULL,         -- sha256 of the input's bytes (of the UTF-8 text)
    vector BLOB NOT NULL,         -- float32 little-endian
    used REAL NOT NULL,           -- last use, for LRU eviction
    PRIMARY KEY (namespace, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS embeddings_used ON embeddings (used);
"""
COLUMNS = ["namespace", "digest", "vector", "used"]
INSERT = "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)"
TOUCH = "UPDATE embeddings SET used = ? WHERE namespace = ? AND digest = ?"
DEFAULT_MAX_ENTRIES = 100_000  # ~150 MB of 384-d vectors
DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}  # another process held it too long

log = logging.getLogger(__name__)
T = TypeVar("T")


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class _NotACache(sqlite3.DatabaseError):
    """A database whose `embeddings` table is not ours: handled like a damaged file."""


def _count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])


def _error_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)  # absent on errors not raised by SQLite
    return None if code is None else code & 0xFF  # the primary code, without extended bits


class EmbeddingCache:
    """SQLite table of vectors by input digest; one object may be used from many threads.

    Each thread gets its own connection (WAL: readers never wait for the writer), and writes
    are serialised by a lock, so a server's thread pool can share one cache.
    """

    def __init__(self, path: Path, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.path = Path(path)
        self.max_entries = max_entries
        self._lock = threading.RLock()  # writes, rebuilds, turning off
        self._threads = ThreadConnections(self._open)  # reset when the file is rebuilt
        self._off: str | None = None  # why the cache is turned off (None: it is on)
        self._run(lambda db: None, None)  # open now: a damaged file is replaced at once

    @property
    def enabled(self) -> bool:
        """False once the cache was turned off (cannot be opened or written) or closed."""
        return self._off is None and not self._threads.closed

    def __len__(self) -> int:
        return self._run(_count, 0)

    def get_many(
        self, namespace: str, digests: Sequence[bytes], dim: int
    ) -> dict[bytes, np.ndarray]:
        unique = list(dict.fromkeys(digests))

        def read(db: sqlite3.Connection) -> dict[bytes, np.ndarray]:
            found: dict[bytes, np.ndarray] = {}
            for start in range(0, len(unique), 500):  # stay under SQLite's host-parameter limit
                part = unique[start : start + 500]
                marks = ", ".join("?" * len(part))
                rows = db.execute(
                    "SELECT digest, vector FROM embeddings "
                    f"WHERE namespace = ? AND digest IN ({marks})",
                    (namespace, *part),
                ).fetchall()
                for key, blob in rows:
                    if len(blob) == 4 * dim:  # a vector of another size is a miss, not an error
                        found[key] = np.frombuffer(blob, dtype="<f4")
            return found

        nothing: dict[bytes, np.ndarray] = {}
        found = self._run(read, nothing) if unique else nothing
        if found:
            now = time.time()
            touched = [(now, namespace, key) for key in found]
            self._run(lambda db: self._write(db, TOUCH, touched), None)
        return found

    def put_many(self, namespace: str, digests: Sequence[bytes], vectors: np.ndarray) -> None:
        if self.max_entries <= 0 or not digests:
            return
        now = time.time()
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        rows = [(namespace, d, v.tobytes(), now) for d, v in zip(digests, vectors, strict=True)]
        self._run(lambda db: self._write(db, INSERT, rows, evict=True), None)

    def close(self) -> None:
        """Close every thread's connection once no lookup is running in another thread."""
        self._threads.close()

    # ---- connections, and what happens when SQLite fails ---------------------------------------

    def _write(
        self, db: sqlite3.Connection, sql: str, rows: list[tuple], evict: bool = False
    ) -> None:
        """One transaction, one writer at a time (in this process; SQLite locks for others)."""
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
                if evict:
                    excess = _count(db) - self.max_entries
                    if excess > 0:
                        db.execute(
                            "DELETE FROM embeddings WHERE (namespace, digest) IN "
                            "(SELECT namespace, digest FROM embeddings ORDER BY used LIMIT ?)",
                            (excess,),
                        )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # report the first error, not this
                        db.execute("ROLLBACK")
                raise

    def _run(self, operation: Callable[[sqlite3.Connection], T], fallback: T) -> T:
        """`operation` on this thread's connection; `fallback` when the cache cannot serve.

        A damaged file is rebuilt and the operation tried once more; a busy database skips
        this one operation; any other failure turns the cache off.
        """
        for attempt in range(2):
            if not self.enabled:
                return fallback
            generation = self._threads.generation
            try:
                with self._threads.using():
                    return operation(self._threads.get())
            except ClosedError:
                return fallback  # closed by another thread
            except sqlite3.Error as exc:
                if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
                    raise  # a bug here, not a problem with the file
                code = _error_code(exc)
                if (code in DAMAGED or isinstance(exc, _NotACache)) and attempt == 0:
                    self._rebuild(generation, exc)
                    continue
                if code in BUSY:
                    log.warning("embedding cache %s is busy (%s): skipped once", self.path, exc)
                    return fallback
                self._turn_off(exc)
        return fallback

    def _open(self) -> sqlite3.Connection:
        # check_same_thread=False only so that close() may close every thread's connection;
        # each connection is used by the thread that made it.
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a lost last write costs a re-embed only
            columns = [row[1] for row in db.execute("PRAGMA table_info(embeddings)")]
            if columns and columns != COLUMNS:
                raise _NotACache(f"its embeddings table has columns {columns}")
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _rebuild(self, generation: int, exc: sqlite3.Error) -> None:
        """Delete the damaged file (and its journal files) so the next connection starts anew."""
        with self._lock:
            if generation != self._threads.generation:
                return  # another thread rebuilt it already
            log.warning("embedding cache %s is damaged (%s): starting a new one", self.path, exc)
            try:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            except OSError as error:
                self._turn_off(error)
            self._threads.reset()  # every thread reconnects, to the new file

    def _turn_off(self, exc: BaseException) -> None:
        with self._lock:
            if self._off is None:
                self._off = str(exc)
                log.warning(
                    "embedding cache %s cannot be used (%s): embedding without it", self.path, exc
                )


class CachedEncoder(BaseEmbeddingModel):
    """A model whose inputs are looked up in an EmbeddingCache before the model runs them.

    It is the model to its callers: same name, dimension and modality, and the capabilities of
    the wrapped model that it passes through (token vectors, tokenizer, word lookups; those are
    not cached). Safe to share between threads when the wrapped model is.
    """

    PASSED_THROUGH = frozenset({TOKEN_EMBEDDINGS, TOKENIZER, WORD_VECTORS})

    def __init__(self, encoder: EmbeddingModel, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.cache = cache
        self.name, self.backend = encoder.name, encoder.backend
        self.dim, self.max_tokens = encoder.dim, encoder.max_tokens
        self.modality, self.asymmetric = encoder.modality, encoder.asymmetric
        self.capabilities = encoder.capabilities & self.PASSED_THROUGH
        self._namespace = f"{encoder.name}|{encoder.backend}"

    def __repr__(self) -> str:
        return f"CachedEncoder({self.encoder!r}, entries={len(self.cache)})"

    def item_bytes(self, item: str) -> bytes:
        return self.encoder.item_bytes(item)

    def encode(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._encode(texts, self.encoder.encode, "", batch_size, show_progress_bar)

    def encode_query(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._encode(
            texts, self.encoder.encode_query, "query", batch_size, show_progress_bar
        )

    def encode_document(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._encode(
            texts, self.encoder.encode_document, "document", batch_size, show_progress_bar
        )

    def _encode(
        self,
        texts: str | Sequence[str],
        encode: Callable[..., np.ndarray],
        kind: str,
        batch_size: int,
        show_progress_bar: bool,
    ) -> np.ndarray:
        """Asymmetric models keep a cache space per kind (query, document)."""
        namespace = f"{self._namespace}|{kind}" if self.asymmetric and kind else self._namespace
        items, single = as_text_list(texts)
        digests = [digest(self.encoder.item_bytes(item)) for item in items]
        cached = self.cache.get_many(namespace, digests, self.dim)
        missing = [i for i, d in enumerate(digests) if d not in cached]
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if missing:
            fresh = encode(
                [items[i] for i in missing],
                batch_size=batch_size,
                show_progress_bar=show_progress_bar,
            )
            out[missing] = fresh
            rows = {digests[i]: fresh[n] for n, i in enumerate(missing)}  # repeats collapse
            self.cache.put_many(namespace, list(rows), np.array(list(rows.values())))
        for i, key in enumerate(digests):
            if key in cached:
                out[i] = cached[key]
        return out[0] if single else out

    # ---- capabilities passed through to the wrapped model --------------------------------------

    def token_embeddings(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        inner = as_token_embedder(self.encoder)
        if inner is None:
            raise InvalidInputError(f"{self.name} has no token vectors")
        return inner.token_embeddings(texts)

    @property
    def tokenizer_file(self) -> Path:
        inner = as_tokenized(self.encoder)
        if inner is None:
            raise InvalidInputError(f"{self.name} has no tokenizer of its own")
        return inner.tokenizer_file

    def most_similar(
        self, positive: str | Sequence[str], negative: Sequence[str] = (), k: int = 10
    ) -> list[tuple[str, float]]:
        return self._word_vectors().most_similar(positive, negative, k)

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        return self._word_vectors().analogy(a, b, c, k)

    def _word_vectors(self) -> WordVectorModel:
        inner = as_word_vectors(self.encoder)
        if inner is None:
            raise InvalidInputError(f"{self.name} is not a word-vector model")
        return inner
