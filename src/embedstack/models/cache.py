"""A persistent, bounded embedding cache: embedding an input the model has seen is a lookup.

Keyed by (model, backend, sha256 of the input's bytes): a text's UTF-8, an image's or a sound's
file content (the model says which, `item_bytes`). Text keys are the same as when the cache
hashed text directly, so caches written before still hit. Entries are written only after a
batch encodes successfully, in one transaction, so a failed encode leaves nothing half-written.
When the cache grows past `max_entries`, the least recently used entries are dropped.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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
DEFAULT_MAX_ENTRIES = 100_000  # ~150 MB of 384-d vectors


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class EmbeddingCache:
    """SQLite table of vectors by input digest."""

    def __init__(self, path: Path, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.path = Path(path)
        self.max_entries = max_entries
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]

    def get_many(
        self, namespace: str, digests: Sequence[bytes], dim: int
    ) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):  # stay under SQLite's host-parameter limit
            part = unique[start : start + 500]
            marks = ", ".join("?" * len(part))
            rows = self._db.execute(
                "SELECT digest, vector FROM embeddings "
                f"WHERE namespace = ? AND digest IN ({marks})",
                (namespace, *part),
            ).fetchall()
            for digest, blob in rows:
                if len(blob) == 4 * dim:  # a vector of another size is a miss, not an error
                    found[digest] = np.frombuffer(blob, dtype="<f4")
        if found:
            now = time.time()
            self._db.executemany(
                "UPDATE embeddings SET used = ? WHERE namespace = ? AND digest = ?",
                ((now, namespace, digest) for digest in found),
            )
        return found

    def put_many(self, namespace: str, digests: Sequence[bytes], vectors: np.ndarray) -> None:
        if self.max_entries <= 0:
            return
        now = time.time()
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                ((namespace, d, v.tobytes(), now) for d, v in zip(digests, vectors, strict=True)),
            )
            excess = len(self) - self.max_entries
            if excess > 0:
                self._db.execute(
                    "DELETE FROM embeddings WHERE (namespace, digest) IN "
                    "(SELECT namespace, digest FROM embeddings ORDER BY used LIMIT ?)",
                    (excess,),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()


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
