"""Every filter operator, checked against an independent brute-force reference."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from embedstack import Collection
from embedstack.errors import FilterError
from tests.conftest import unit_vectors

DIM = 384
LANGS = ["en", "de", "fr", "es"]


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return None  # lists, objects and nulls are stored but never match


def _compare(stored: Any, op: str, value: Any) -> bool:
    """Reference semantics: values only compare within the same kind; missing never matches."""
    if _kind(stored) is None or _kind(stored) != _kind(value):
        return False
    return {
        "$eq": stored == value,
        "$gt": stored > value,
        "$gte": stored >= value,
        "$lt": stored < value,
        "$lte": stored <= value,
    }[op]


def matches(meta: dict, spec: dict) -> bool:
    for key, cond in spec.items():
        if key == "$and":
            ok = all(matches(meta, sub) for sub in cond)
        elif key == "$or":
            ok = any(matches(meta, sub) for sub in cond)
        elif not isinstance(cond, dict):
            ok = _compare(meta.get(key), "$eq", cond)
        else:
            ok = True
            for op, value in cond.items():
                stored = meta.get(key)
                if op == "$in":
                    ok &= any(_compare(stored, "$eq", v) for v in value)
                elif op == "$nin":
                    ok &= not any(_compare(stored, "$eq", v) for v in value)
                elif op == "$ne":
                    ok &= not _compare(stored, "$eq", value)
                else:
                    ok &= _compare(stored, op, value)
        if not ok:
            return False
    return True


def _metadata(i: int, rng: random.Random) -> dict:
    meta: dict[str, Any] = {"lang": rng.choice(LANGS), "year": rng.randint(1990, 2024)}
    if rng.random() < 0.5:
        meta["score"] = round(rng.uniform(0, 1), 3)
    if rng.random() < 0.3:
        meta["draft"] = rng.random() < 0.5
    if i % 17 == 0:
        meta["year"] = str(meta["year"])  # a string where others have numbers: kinds must not mix
    if i % 13 == 0:
        meta["tags"] = ["a", "b"]
        meta["note"] = None
    if i % 29 == 0:
        meta["big"] = 2**70  # beyond SQLite's int64: indexed as a float
    return meta


FILTERS = [
    {"lang": "en"},
    {"lang": {"$eq": "de"}},
    {"lang": {"$ne": "en"}},
    {"year": 2000},
    {"year": {"$gt": 2010}},
    {"year": {"$gte": 2010, "$lt": 2015}},
    {"year": {"$lte": 1995}},
    {"year": {"$gt": "2000"}},
    {"score": {"$lt": 0.25}},
    {"lang": {"$in": ["fr", "es"]}},
    {"lang": {"$nin": ["fr", "es"]}},
    {"year": {"$in": [1999, 2001, "2003"]}},
    {"draft": True},
    {"draft": {"$ne": True}},
    {"$or": [{"lang": "fr"}, {"year": {"$lt": 1993}}]},
    {"$and": [{"lang": "en"}, {"score": {"$gte": 0.5}}]},
    {"lang": "de", "year": {"$gte": 2020}},
    {"$or": [{"$and": [{"lang": "en"}, {"draft": False}]}, {"score": {"$gt": 0.95}}]},
    {"missing_field": "x"},
    {"lang": "en", "year": 1990, "score": 0.5},
    {"tags": "a"},
    {"note": {"$ne": "x"}},
    {"big": {"$gt": 2**69}},
]


@pytest.fixture(scope="module", params=["flat", "hnsw"])
def filled(request, tmp_path_factory):
    rng = random.Random(7)
    n = 600
    metadata = [_metadata(i, rng) for i in range(n)]
    vectors = unit_vectors(n, DIM, seed=3)
    folder = tmp_path_factory.mktemp(f"filters-{request.param}")
    kb = Collection.open(folder, index=request.param)
    ids = [f"doc{i}" for i in range(n)]
    kb.add([f"text {i}" for i in range(n)], ids=ids, metadata=metadata, embeddings=vectors)
    yield kb, ids, metadata, vectors
    kb.close()


@pytest.mark.parametrize("spec", FILTERS, ids=[str(f) for f in FILTERS])
def test_filter_matches_reference(filled, spec):
    kb, ids, metadata, vectors = filled
    expected_ids = [i for i, m in zip(ids, metadata, strict=True) if matches(m, spec)]
    assert kb.count(spec) == len(expected_ids)

    query = unit_vectors(1, DIM, seed=11)[0]
    k = 10
    hits = kb.search(query, k=k, filter=spec)
    # Brute-force reference: exact top-k among the rows the filter admits.
    position = {id_: n for n, id_ in enumerate(ids)}
    reference = sorted(expected_ids, key=lambda i: -float(vectors[position[i]] @ query))[:k]
    assert len(hits) == min(k, len(expected_ids))  # never a silent shortfall
    assert all(matches(hit.metadata, spec) for hit in hits)
    if kb.config.index == "flat":
        assert [hit.id for hit in hits] == reference
    else:  # approximate, but the scores returned are the true ones
        assert len(set(hit.id for hit in hits) & set(reference)) >= 0.8 * len(reference)
        for hit in hits:
            assert abs(hit.score - float(vectors[position[hit.id]] @ query)) < 1e-4


def test_selective_filter_returns_k_when_k_match(filled):
    """A filter matching 1–2% of rows still yields exactly k hits (post-filtering would not)."""
    kb, ids, metadata, _ = filled
    spec = {"$and": [{"lang": "fr"}, {"year": {"$gte": 2021}}]}
    matching = sum(matches(m, spec) for m in metadata)
    assert 5 <= matching < 40
    query = unit_vectors(1, DIM, seed=5)[0]
    assert len(kb.search(query, k=5, filter=spec)) == 5
    assert len(kb.search(query, k=100, filter=spec)) == matching


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"lang": {"$regex": "e.*"}}, "unknown operator '$regex'"),
        ({"$not": {"lang": "en"}}, "unknown operator '$not'"),
        ({"lang": {"$in": "en"}}, "non-empty list"),
        ({"lang": {"$in": []}}, "non-empty list"),
        ({"$or": {"lang": "en"}}, "non-empty list"),
        ({"lang": {"$gt": [1, 2]}}, "single value"),
        ({"lang": None}, "strings, numbers or booleans"),
        ({"draft": {"$gt": True}}, "booleans only support equality"),
        ({"lang": {}}, "empty condition"),
        (["lang", "en"], "must be a JSON object"),
    ],
)
def test_bad_filters_are_clear_errors(filled, spec, message):
    kb = filled[0]
    with pytest.raises(FilterError, match=message.replace("$", r"\$").replace("(", r"\(")):
        kb.search(np.ones(DIM, dtype=np.float32), k=3, filter=spec)
