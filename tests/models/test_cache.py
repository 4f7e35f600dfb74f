"""Embedding cache: hits skip the model, entries persist, size is bounded, failures add nothing;
keys are digests of bytes."""

from __future__ import annotations

import hashlib
import sqlite3
import time

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
