"""Embedding cache: hits skip the model, entries persist, size is bounded, failures add nothing;
keys are digests of bytes; one cache serves many threads; a damaged or unusable file never stops
encoding."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embedstack import Collection
from embedstack.errors import InvalidInputError
from embedstack.models.base import BaseEmbeddingModel
from embedstack.models.cache import CachedEncoder, EmbeddingCache


class CountingEncoder(BaseEmbeddingModel):
    """Passes through to the real encoder and records which texts actually reached it."""

    def __init__(self, encoder) -> None:
        self.inner = encoder
        self.name, self.backend = encoder.name, encoder.backend
        self.dim, self.max_tokens = encoder.dim, encoder.max_tokens
        self.seen: list[str] = []

    def encode(self, texts, batch_size=32, show_progress_bar=False):
        self.seen.extend(texts)
        return self.inner.encode(texts, batch_size=batch_size)


TEXTS = ["the cat sat on the mat", "stock prices fell sharply", "a recipe for lentil soup"]


def test_second_encode_is_a_lookup(tmp_path, model):
    counting = CountingEncoder(model)
    cached = CachedEncoder(counting, EmbeddingCache(tmp_path / "cache.db"))
    first = cached.encode(TEXTS)
    assert counting.seen == TEXTS
    again = cached.encode(TEXTS[::-1] + ["a new sentence", TEXTS[0]])
    assert counting.seen == [*TEXTS, "a new sentence"]  # only the unseen text ran
    np.testing.assert_array_equal(again[:3], first[::-1])
    np.testing.assert_array_equal(again[4], first[0])
    assert cached.encode(TEXTS[1]).shape == (384,)


def test_entries_persist_when_reopened(tmp_path, model):
    path = tmp_path / "cache.db"
    CachedEncoder(model, EmbeddingCache(path)).encode(TEXTS)
    counting = CountingEncoder(model)
    CachedEncoder(counting, EmbeddingCache(path)).encode(TEXTS)
    assert counting.seen == []


def test_cache_is_keyed_by_backend(tmp_path, model):
    from embedstack import load_model

    cache = EmbeddingCache(tmp_path / "cache.db")
    CachedEncoder(model, cache).encode(TEXTS)
    counting = CountingEncoder(load_model("all-MiniLM-L6-v2", backend="onnx"))
    CachedEncoder(counting, cache).encode(TEXTS)
    assert counting.seen == TEXTS and len(cache) == 6


def test_size_is_bounded_least_recently_used_out(tmp_path, model):
    cache = EmbeddingCache(tmp_path / "cache.db", max_entries=4)
    cached = CachedEncoder(model, cache)
    cached.encode(["one", "two", "three", "four"])
    cached.encode(["one"])  # touch: now the most recently used
    cached.encode(["five", "six"])
    assert len(cache) == 4
    counting = CountingEncoder(model)
    CachedEncoder(counting, cache).encode(["one", "five", "six", "two"])
    assert counting.seen == ["two"]  # "two" and "three" were evicted; "one" survived


def test_a_failed_encode_writes_nothing(tmp_path, model):
    cache = EmbeddingCache(tmp_path / "cache.db")
    with pytest.raises(InvalidInputError):
        CachedEncoder(model, cache).encode(["fine text", 42])
    assert len(cache) == 0


def test_collection_caches_its_embeddings(tmp_path, model):
    with Collection.open(tmp_path / "kb", model) as kb:
        kb.add(TEXTS, ids=["a", "b", "c"])
        assert len(kb.model.cache) == 3
        kb.search(TEXTS[2], k=1)  # the query text is already cached
        assert len(kb.model.cache) == 3
        assert kb.search(TEXTS[2], k=1, mode="dense")[0].score == pytest.approx(1.0, abs=1e-6)
    with Collection.open(tmp_path / "nocache", model, cache_size=0) as kb:
        kb.add(TEXTS[:1])
        assert not (tmp_path / "nocache" / "embedding-cache.db").exists()


# The table as the text-keyed cache wrote it: sha256 of the UTF-8 text.
SCHEMA_BEFORE_BYTES_KEYS = """
CREATE TABLE IF NOT EXISTS embeddings (
    namespace TEXT NOT NULL, digest BLOB NOT NULL, vector BLOB NOT NULL, used REAL NOT NULL,
    PRIMARY KEY (namespace, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS embeddings_used ON embeddings (used);
"""


def test_entries_written_by_the_text_keyed_cache_still_hit(tmp_path, model):
    path = tmp_path / "cache.db"
    text = "café ☕ naïve résumé"
    stored = model.encode("an unrelated sentence, so a hit is recognisable")
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_BEFORE_BYTES_KEYS)
    db.execute(
        "INSERT INTO embeddings VALUES (?, ?, ?, ?)",
        (
            f"{model.name}|{model.backend}",
            hashlib.sha256(text.encode("utf-8")).digest(),
            stored.astype("<f4").tobytes(),
            time.time(),
        ),
    )
    db.commit()
    db.close()
    counting = CountingEncoder(model)
    got = CachedEncoder(counting, EmbeddingCache(path)).encode(text)
    assert counting.seen == []
    np.testing.assert_array_equal(got, stored)


def test_a_lone_surrogate_is_a_key_and_a_text(tmp_path, model):
    """JSON may carry "\\ud800"; it is cached under its bytes and embedded as U+FFFD."""
    counting = CountingEncoder(model)
    cached = CachedEncoder(counting, EmbeddingCache(tmp_path / "cache.db"))
    broken = "a broken \ud800 character"
    first = cached.encode([broken, "fine"], batch_size=1)
    assert cached.encode(broken).shape == (384,) and len(counting.seen) == 2
    np.testing.assert_allclose(first[0], model.encode("a broken \ufffd character"), atol=1e-6)


def test_one_cache_shared_by_eight_threads(tmp_path, model):
    """A server's thread pool: overlapping texts at once; no errors, same vectors as one thread."""
    texts = [f"sentence {i} about {('caching', 'threads', 'vectors')[i % 3]}" for i in range(40)]
    # batch_size=1: each text is embedded alone, so its int8 vector does not depend on batch mates
    expected = {text: model.encode(text, batch_size=1) for text in texts}
    cache = EmbeddingCache(tmp_path / "cache.db")
    cached = CachedEncoder(model, cache)
    start = threading.Barrier(8)

    def work(worker: int) -> dict[str, np.ndarray]:
        mine = texts[worker * 4 : worker * 4 + 12] + texts[:4]  # neighbours overlap
        start.wait()
        seen = {}
        for _ in range(3):  # misses, then hits while others still write
            for text, vector in zip(mine, cached.encode_document(mine, batch_size=1), strict=True):
                seen[text] = vector
            seen[mine[0]] = cached.encode_query(mine[0], batch_size=1)
        return seen

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for seen in results:
        for text, vector in seen.items():
            np.testing.assert_array_equal(vector, expected[text])
    assert len(cache) == len(texts) and cache.enabled


def fill(path, model, texts) -> int:
    cache = EmbeddingCache(path)
    CachedEncoder(model, cache).encode(texts)
    cache.close()
    return path.stat().st_size


MANY = [f"text number {i} for a cache file of some size" for i in range(200)]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign table"])
def test_a_damaged_cache_file_is_replaced(tmp_path, model, damage, caplog):
    path = tmp_path / "embedding-cache.db"
    size = fill(path, model, MANY)
    if damage == "garbage":
        path.write_bytes(bytes(range(256)) * (size // 256))
    elif damage == "truncated":
        os.truncate(path, size // 3)
    else:  # a valid database, but not ours
        path.unlink()
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE embeddings (text TEXT, vector BLOB)")
    counting = CountingEncoder(model)
    with caplog.at_level(logging.WARNING, logger="embedstack.models.cache"):
        cache = EmbeddingCache(path)
        vectors = CachedEncoder(counting, cache).encode(TEXTS)
    assert "is damaged" in caplog.text
    assert counting.seen == TEXTS and cache.enabled and len(cache) == 3
    np.testing.assert_allclose(vectors, model.encode(TEXTS), atol=1e-6)
    cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_file_damaged_while_open_is_replaced(tmp_path, model):
    path = tmp_path / "embedding-cache.db"
    fill(path, model, MANY)
    cache = EmbeddingCache(path)
    cached = CachedEncoder(model, cache)
    assert len(cache) == len(MANY)
    path.write_bytes(b"\x8f" * path.stat().st_size)
    vectors = cached.encode(TEXTS)
    np.testing.assert_allclose(vectors, model.encode(TEXTS), atol=1e-6)
    assert cache.enabled and len(cache) == 3


@pytest.mark.parametrize("where", ["under a file", "a folder"])
def test_a_cache_that_cannot_be_opened_is_skipped(tmp_path, model, where, caplog):
    """A read-only or missing place: real OS failures (tests run as root, so no chmod)."""
    blocker = tmp_path / "blocker"
    if where == "under a file":
        blocker.write_text("a file where the cache's folder should be")
        path = blocker / "embedding-cache.db"
    else:
        blocker.mkdir()
        path = blocker
    with caplog.at_level(logging.WARNING, logger="embedstack.models.cache"):
        cache = EmbeddingCache(path)
        counting = CountingEncoder(model)
        cached = CachedEncoder(counting, cache)
        first, again = cached.encode(TEXTS), cached.encode(TEXTS)
    assert not cache.enabled and len(cache) == 0
    assert counting.seen == TEXTS * 2  # no cache: every call embeds
    np.testing.assert_array_equal(first, again)
    assert caplog.text.count("cannot be used") == 1  # one warning, not one per call
