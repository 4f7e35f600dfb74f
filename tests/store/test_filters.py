"""Every filter operator, checked against an independent brute-force reference."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sqlite3
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from embedstack import Collection
from embedstack.errors import FilterError, FilterLimitError
from embedstack.store import filters, sqlite_filters
from embedstack.store.local import DB_FILE
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


# ---- the parsed tree, the Python reference, the SQLite compiler and the limits -------------


def test_library_reference_agrees_with_this_files_reference(filled):
    _, _, metadata, _ = filled
    for spec in FILTERS:
        node = filters.parse_filter(spec)
        assert [filters.matches(node, m) for m in metadata] == [matches(m, spec) for m in metadata]


def test_parse_builds_a_flat_immutable_tree():
    node = filters.parse_filter(
        {"year": {"$gte": 2010, "$lt": 2015}, "$or": [{"lang": "en"}, {"tag": {"$nin": ["a"]}}]}
    )
    assert node == filters.And(
        (
            filters.Compare("year", "gte", 2010, "number"),
            filters.Compare("year", "lt", 2015, "number"),
            filters.Or(
                (filters.Compare("lang", "eq", "en", "text"), filters.In("tag", ("a",), True))
            ),
        )
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.children = ()  # type: ignore[misc]
    assert filters.parse_filter(None) is None
    assert filters.parse_filter({}) == filters.MATCH_ALL
    assert filters.parse_filter({"$and": [{"$and": [{"a": 1}]}]}) == filters.parse_filter({"a": 1})
    assert filters.matches(None, {}) and filters.matches(filters.MATCH_ALL, {})


def test_nodes_compare_by_kind_not_by_python_equality():
    assert filters.In("f", (1,)) != filters.In("f", (True,))
    assert len({filters.In("f", (1,)), filters.In("f", (True,)), filters.In("f", (1,))}) == 2
    node = filters.parse_filter({"f": {"$in": [True]}})
    assert filters.matches(node, {"f": True}) and not filters.matches(node, {"f": 1})


def test_error_messages_name_the_field_and_stay_one_short_line():
    with pytest.raises(FilterError, match=r"got NoneType: None \(field 'lang'\)$"):
        filters.parse_filter({"lang": None})
    with pytest.raises(FilterError) as caught:
        filters.parse_filter({"tag": {"$in": "x\n" * 10_000}})
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_a_filter_far_too_deep_is_refused_without_recursing_into_it():
    assert issubclass(FilterLimitError, FilterError) and FilterLimitError.status == 413
    deep: dict = {"a": 1}
    for _ in range(9_999):
        deep = {"$or": [deep]}
    with pytest.raises(FilterLimitError, match="^filter nests 10000 levels deep; the limit is 32$"):
        filters.parse_filter(deep)


# A store of rows with every kind of metadata value, for the limit and consistency tests.

N_ROWS = 200
TEXTS = ["", "a", "b", "en", "fr", "z", "Z", "é", "ß", "日本", "2000", "10", "9"]
NUMBERS = [
    0, -1, 1, 2, 2.5, -0.0, 1990, 2000, 2000.0, 2000.5, 2024,
    2**53, 2**53 + 1, float(2**53), 2**63 - 1, -(2**63), 2**70, 2**70 + 1, float(2**70), 1e300,
]  # fmt: skip
FIELDS = ["i", "lang", "year", "score", "draft", "tags", "note", "big", "x"]


def _scalar(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(NUMBERS)
    if roll < 0.85:
        return rng.choice(TEXTS)
    return rng.random() < 0.5


def _row(i: int, rng: random.Random) -> dict:
    meta: dict[str, Any] = {"i": i}
    for field in FIELDS[1:]:
        roll = rng.random()
        if roll < 0.2:
            continue  # missing
        if roll < 0.3:
            meta[field] = rng.choice([None, [1, "a"], {"k": 1}])  # stored, never filterable
        elif field == "lang":
            meta[field] = rng.choice(LANGS) if roll < 0.8 else _scalar(rng)
        elif field == "year":
            meta[field] = rng.randint(1990, 2024) if roll < 0.8 else _scalar(rng)
        else:
            meta[field] = _scalar(rng)
    return meta


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    rng = random.Random(20240611)
    metadata = [_row(i, rng) for i in range(N_ROWS)]
    ids = [f"row{i}" for i in range(N_ROWS)]
    kb = Collection.open(tmp_path_factory.mktemp("filters-mixed"), index="flat")
    kb.add(
        [f"text {i}" for i in ids],
        ids=ids,
        metadata=metadata,
        embeddings=unit_vectors(N_ROWS, DIM, seed=1),
    )
    yield kb, ids, metadata
    kb.close()


QUERY = unit_vectors(1, DIM, seed=2)[0]


def _check(kb, ids, metadata, spec) -> int:
    """The store returns exactly the rows the Python reference says, through count and search."""
    node = filters.parse_filter(spec)
    expected = {id_ for id_, meta in zip(ids, metadata, strict=True) if filters.matches(node, meta)}
    assert kb.count(spec) == len(expected)
    assert {hit.id for hit in kb.search(QUERY, k=N_ROWS, filter=spec)} == expected
    return len(expected)


def _nested(depth: int) -> dict:
    """`depth` levels of filter objects, alternating $and (with $ne/$nin) and $or."""
    spec: dict = {"i": {"$gte": 3, "$lt": 60}}
    for level in range(depth - 1):
        if level % 2:
            branch = {"i": 100 + level, "year": {"$gte": 2000}}
            spec = {"$or": [spec, branch]}
        else:
            branch = {"i": {"$ne": level}, "lang": {"$nin": [LANGS[level % 4], 7]}}
            spec = {"$and": [spec, branch]}
    return spec


@pytest.mark.parametrize("depth", [6, 7, 8, filters.MAX_FILTER_DEPTH])
def test_deep_filters_evaluate(mixed, depth):
    assert 0 < _check(*mixed, _nested(depth)) < N_ROWS


def _branches(count: int, shape: str) -> dict:
    if shape == "same field":  # compiles to one IN
        return {"$or": [{"i": j} for j in range(count)]}
    if shape == "ranges":
        return {"$or": [{"i": {"$lte": j // 10}} for j in range(count)]}
    if shape == "and, one field":  # every comparison on one field in one $and
        return {"$and": [{"i": {"$lt": 2 * N_ROWS - j}} for j in range(count)]}
    if shape == "and, fields":
        return {"$and": [{FIELDS[j % 5]: {"$gte": -j}} for j in range(count)]}
    # every branch its own compound: a negation, or two fields
    return {
        "$or": [
            {"i": {"$ne": j}} if j % 3 == 0 else {"i": j % N_ROWS, "year": {"$gte": 2000}}
            for j in range(count)
        ]
    }


@pytest.mark.parametrize(
    "shape, count",
    [("same field", 501), ("same field", 1000), ("ranges", 501), ("ranges", 1000)]
    + [("and, one field", 1000), ("and, fields", 501), ("and, fields", 1000)]
    + [("mixed", 501), ("mixed", 600)],  # 1.67 conditions a branch: 1,000 at 600 branches
)
def test_wide_filters_evaluate(mixed, shape, count):
    _check(*mixed, _branches(count, shape))


def test_wide_and_with_negations_evaluates(mixed):
    spec = {"$and": [{"i": {"$ne": j}} for j in range(0, 1000, 2)] + [{"x": {"$nin": ["a"]}}]}
    assert _check(*mixed, spec) > 0


def test_many_values_evaluate(mixed):
    values = list(range(0, 2 * filters.MAX_IN_VALUES, 2))
    _check(*mixed, {"i": {"$in": values}})
    _check(*mixed, {"i": {"$nin": values[:-2]}, "$or": [{"year": 2000}, {"lang": {"$ne": "en"}}]})


@pytest.mark.parametrize(
    "spec",
    [
        {"score": math.nan},
        {"score": {"$ne": math.nan}},
        {"score": {"$gt": math.nan}},
        {"score": {"$in": [math.nan, 2.5, "a"]}},
        {"score": {"$nin": [math.nan, 2.5]}},
        {"score": {"$lt": math.inf}},
        {"score": {"$gt": -math.inf, "$lte": 2**70}},
    ],
    ids=str,
)
def test_nan_and_infinity_in_a_filter(mixed, spec):
    """Metadata cannot hold them, but filters can: NaN equals nothing, infinities bound."""
    _check(*mixed, spec)


def _too_deep() -> dict:
    return _nested(filters.MAX_FILTER_DEPTH + 1)


def _too_many_conditions() -> dict:
    return {"$or": [{"i": {"$gte": j}} for j in range(filters.MAX_FILTER_CONDITIONS)] + [{}]}


def _too_many_in_values() -> dict:
    return {"tags": {"$nin": list(range(filters.MAX_IN_VALUES + 1))}}


def _too_many_values() -> dict:
    half = filters.MAX_FILTER_VALUES // 2
    return {"$or": [{"i": {"$in": list(range(half))}}, {"year": {"$in": list(range(half + 1))}}]}


@pytest.mark.parametrize(
    "spec, message",
    [
        (_too_deep(), "filter nests 33 levels deep; the limit is 32"),
        (_too_many_conditions(), "filter has 1,001 conditions; the limit is 1,000"),
        (_too_many_in_values(), "$nin on 'tags' has 10,001 values; the limit is 10,000"),
        (_too_many_values(), "filter has 10,001 values; the limit is 10,000"),
    ],
    ids=["depth", "conditions", "in-values", "values"],
)
def test_filters_past_a_limit_are_refused(mixed, spec, message):
    kb, ids, _ = mixed
    for call in (
        lambda: kb.count(spec),
        lambda: kb.search(QUERY, k=5, filter=spec),
        lambda: kb.search_batch(np.stack([QUERY, QUERY]), k=5, filter=spec),
    ):
        with pytest.raises(FilterLimitError) as caught:
            call()
        assert str(caught.value) == message
    assert len(kb) == len(ids) and kb.count({"i": {"$gte": 0}}) == N_ROWS  # nothing changed


def test_at_the_limits_compiles_within_sqlites_limits():
    at_depth = filters.parse_filter(_nested(filters.MAX_FILTER_DEPTH))
    sql, params = sqlite_filters.compile_sqlite(at_depth)
    assert sql.startswith("WITH ") and sql.count("?") == len(params)
    widest = filters.parse_filter(_branches(600, "mixed"))
    sql, params = sqlite_filters.compile_sqlite(widest)
    assert sql.count("?") == len(params) < 32_766  # SQLite's default SQLITE_MAX_VARIABLE_NUMBER
    assert len(sql) < 1_000_000  # and its default SQLITE_MAX_SQL_LENGTH


SMALL_STACK_SCRIPT = """
import sqlite3, sys, threading
from embedstack.store import filters
from embedstack.store.sqlite_filters import compile_filter, index_rows

def worst(outer):  # 32 levels, each with 30 $ne beside the level below: 931 conditions
    spec = {"i": {"$ne": -1}}
    for level in range(filters.MAX_FILTER_DEPTH - 1):
        others = [{"i": {"$ne": 100 * level + j}} for j in range(30)]
        spec = {outer[level % len(outer)]: [spec, *others]}
    return spec

def run():
    db = sqlite3.connect(":memory:")
    db.executescript(sys.argv[1])
    db.executemany("INSERT INTO chunks VALUES (?)", [(v,) for v in range(50)])
    rows = [r for v in range(50) for r in index_rows(v, {"i": v, "f": str(v)})]
    db.executemany("INSERT INTO chunk_meta VALUES (?, ?, ?, ?)", rows)
    wide = {"$or": [{"i": {"$ne": j}} if j % 2 else {"f": str(j), "i": j} for j in range(666)]}
    for spec in (worst(["$and"]), worst(["$or"]), worst(["$and", "$or"]), wide):
        select, params = compile_filter(spec)
        db.execute(f"SELECT COUNT(*) FROM ({select})", params).fetchone()
    print("ok")

threading.stack_size(320 * 1024)
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""
SCHEMA = (
    "CREATE TABLE chunks (vid INTEGER PRIMARY KEY);"
    "CREATE TABLE chunk_meta (vid INTEGER NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL,"
    " value, PRIMARY KEY (vid, key)) WITHOUT ROWID;"
    "CREATE INDEX chunk_meta_lookup ON chunk_meta (key, kind, value);"
)


def test_the_worst_filters_within_the_limits_run_on_a_small_thread_stack():
    """SQLite compiles compound SELECTs by recursion; a filter within the limits must not need
    much C stack (these need under 192 KiB; a thread gets 8 MiB on Linux by default). In a
    subprocess, because running out of C stack is a segmentation fault."""
    result = subprocess.run(
        [sys.executable, "-c", SMALL_STACK_SCRIPT, SCHEMA],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_plain_filters_compile_to_index_scans_without_ctes():
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    assert sqlite_filters.compile_sqlite(None) == (sqlite_filters.ALL_ROWS, [])
    for spec in FILTERS:
        sql, params = sqlite_filters.compile_filter(spec)
        assert "WITH" not in sql
        plan = " ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "USING COVERING INDEX chunk_meta_lookup (key=? AND kind=?" in plan
        assert "SCAN chunk_meta" not in plan
    sql, params = sqlite_filters.compile_filter({"year": {"$gte": 2010, "$lt": 2015}})
    assert sql.count("SELECT") == 1  # one range scan, not an INTERSECT of two


# Random filters: the SQL result equals the Python reference for every one.


def _random_value(field: str, rng: random.Random) -> Any:
    """Mostly a value typical of the field, so that filters are neither empty nor everything."""
    if rng.random() < 0.4:
        return _scalar(rng)
    if field == "i":
        return rng.randrange(N_ROWS)
    if field == "lang":
        return rng.choice(LANGS)
    if field == "year":
        return rng.randint(1990, 2024)
    return rng.choice(NUMBERS + TEXTS)


def _random_condition(field: str, rng: random.Random) -> Any:
    op = rng.choice(["", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"])
    if op in ("$in", "$nin"):
        return {op: [_random_value(field, rng) for _ in range(rng.randint(1, 5))]}
    value = _random_value(field, rng)
    if isinstance(value, bool) and op not in ("", "$eq", "$ne"):
        op = "$eq"
    if not op:
        return value
    condition = {op: value}
    if op in ("$gt", "$gte") and rng.random() < 0.3:
        upper = _random_value(field, rng)
        if not isinstance(upper, bool):
            condition[rng.choice(["$lt", "$lte"])] = upper
    return condition


def _random_filter(rng: random.Random, depth: int = 0) -> dict:
    spec: dict = {}
    for _ in range(rng.choice([0, 1, 1, 1, 1, 2]) if depth else rng.randint(1, 2)):
        roll = rng.random()
        if roll < 0.3 and depth < 4:
            op = rng.choice(["$and", "$or"])
            spec[op] = [_random_filter(rng, depth + 1) for _ in range(rng.randint(1, 4))]
        else:
            field = rng.choice(FIELDS)
            spec[field] = _random_condition(field, rng)
    return spec


RANDOM_FILTERS = [_random_filter(random.Random(seed)) for seed in range(300)]


@pytest.mark.parametrize("sql_shape", ["default", "every compound split and hoisted"])
def test_random_filters_match_the_python_reference(mixed, monkeypatch, sql_shape):
    if sql_shape != "default":  # exercise the grouping and CTE paths on every filter
        monkeypatch.setattr(sqlite_filters, "COMPOUND_TERMS", 2)
        monkeypatch.setattr(sqlite_filters, "SQL_NESTING", 1)
        monkeypatch.setattr(sqlite_filters, "RANGE_TERMS", 1)
    kb, ids, metadata = mixed
    # The compiled SQL straight against the store's database, for every filter; the whole path
    # (count and search) for every tenth, which is slower (a FAISS search each).
    db = sqlite3.connect(f"file:{kb.folder / DB_FILE}?mode=ro", uri=True)
    counts = []
    for number, spec in enumerate(RANDOM_FILTERS):
        node = filters.parse_filter(spec)
        assert filters.parse_filter(node.to_spec()) == node
        assert json.loads(node.key) == node.to_spec()
        expected = {i for i, meta in zip(ids, metadata, strict=True) if filters.matches(node, meta)}
        select, params = sqlite_filters.compile_sqlite(node)
        found = db.execute(f"SELECT id FROM chunks WHERE vid IN ({select})", params).fetchall()
        assert {row[0] for row in found} == expected, spec
        if number % 10 == 0:
            _check(kb, ids, metadata, spec)
        counts.append(len(expected))
    db.close()
    # the filters are varied enough to mean something: few match nothing, few match everything
    assert sum(0 < c < N_ROWS for c in counts) > 0.6 * len(counts), sorted(counts)
