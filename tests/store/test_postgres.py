"""The PostgreSQL store beyond the contract suite: filters compiled to SQL agree with the Python
reference on every kind of value, a collection on PostgreSQL ingests and searches real files like
the local store, and a server that goes away mid-ingest leaves no half-written file."""

from __future__ import annotations

import math
import re
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from embedstack import Collection
from embedstack.config import CollectionConfig
from embedstack.errors import CollectionError, InvalidInputError, StorageError
from embedstack.store.factory import open_store
from embedstack.store.filters import MAX_FILTER_DEPTH, matches, parse_filter
from tests.conftest import PROJECT, unit_vectors
from tests.store.test_filters import (
    FILTERS,
    LANGS,
    N_ROWS,
    NUMBERS,
    RANDOM_FILTERS,
    _branches,
    _nested,
    _row,
)

DIM = 8


def _open(server, table: str, folder: Path, dim: int = DIM, vectors: str = ""):
    url = server.url_for(table) + (f"&vectors={vectors}" if vectors else "")
    return open_store(folder, CollectionConfig(model="pg-test", dim=dim, store=url))


@pytest.fixture(scope="module")
def mixed_store(postgres_server, tmp_path_factory):
    """200 rows with every kind of metadata value (test_filters.py's), plus each edge number."""
    import random

    rng = random.Random(20240611)
    metadata = [_row(i, rng) for i in range(N_ROWS)]
    metadata += [{"i": N_ROWS + n, "x": value} for n, value in enumerate(NUMBERS)]
    metadata += [{"i": 500, "x": "\u00e9t\u00e9"}, {"i": 501, "x": "\U0001f600"}, {"i": 502}]
    ids = [f"row{i}" for i in range(len(metadata))]
    store = _open(postgres_server, "filters_mixed", tmp_path_factory.mktemp("pg-mixed"))
    store.upsert(ids, [f"text {i}" for i in ids], metadata, unit_vectors(len(ids), DIM, 1))
    yield store, ids, metadata
    store.close()


EDGE_FILTERS = [
    {"x": {"$eq": 2**53}},
    {"x": {"$eq": float(2**53)}},
    {"x": {"$gt": 2**53}},
    {"x": {"$gte": 2**63 - 1}},
    {"x": -(2**63)},
    {"x": float(-(2**63))},
    {"x": {"$lt": -(2**63)}},
    {"x": 2**70 + 1},  # beyond int64: the nearest double, as the reference compares
    {"x": {"$lte": float(2**70)}},
    {"x": {"$gte": 1e300}},
    {"x": -0.0},
    {"x": {"$in": [2000, 2.5, "2000"]}},
    {"x": {"$nin": [2000, True]}},
    {"x": {"$gt": "z"}},
    {"x": {"$gt": "\u00e9"}},  # code point order, not the locale's
    {"x": {"$lt": "Z"}},
    {"x": math.nan},
    {"x": {"$ne": math.nan}},
    {"x": {"$gt": math.nan}},
    {"x": {"$in": [math.nan]}},
    {"x": {"$nin": [math.nan, 0]}},
    {"x": {"$lt": math.inf}},
    {"x": {"$gt": -math.inf, "$lte": 2**70}},
    {"draft": False},
    {"draft": {"$in": [True, 1]}},
    {"tags": {"$ne": "a"}},
    {"note": {"$nin": ["x"]}},
    _nested(MAX_FILTER_DEPTH),
    _branches(600, "mixed"),
    _branches(1000, "and, fields"),
    {"i": {"$in": list(range(0, 20_000, 2))}},
    {"lang": {"$nin": LANGS[:2]}, "$or": [{"year": 2000}, {"lang": {"$ne": "en"}}]},
]


@pytest.mark.parametrize(
    "specs", [FILTERS, EDGE_FILTERS, RANDOM_FILTERS], ids=["plain", "edges", "random"]
)
def test_compiled_filters_select_exactly_what_matches_says(mixed_store, specs):
    store, ids, metadata = mixed_store
    counts = []
    for spec in specs:
        node = parse_filter(spec)
        expected = [i for i, meta in zip(ids, metadata, strict=True) if matches(node, meta)]
        assert store.ids(node) == expected, spec
        counts.append(len(expected))
    assert sum(0 < c < len(ids) for c in counts) > 0.5 * len(counts)


# Forces the planner onto the HNSW index and stops pgvector's iterative scan after 40 tuples,
# so the index comes up short and the exact re-run must make up the difference.
HNSW_ONLY = "&options=" + quote(
    "-c enable_seqscan=off -c enable_bitmapscan=off -c hnsw.max_scan_tuples=40"
)


@pytest.mark.parametrize("planner", ["as it chooses", "index only"])
def test_filtered_dense_search_returns_k_whenever_k_rows_match(postgres_server, tmp_path, planner):
    """1,000 rows under an HNSW index; a filter matching 13 of them still gives 10 hits, the
    exact top 10, and k=50 gives all 13 (pgvector alone post-filters its candidates)."""
    n = 1000
    vectors = unit_vectors(n, DIM, 5)
    metadata = [{"group": "rare" if i % 83 == 0 else "common", "i": i} for i in range(n)]
    table = "selective" if planner == "as it chooses" else "selective_hnsw" + HNSW_ONLY
    store = _open(postgres_server, table, tmp_path)
    counted = []
    count = store._count
    store._count = lambda conn, where: counted.append(where) or count(conn, where)
    try:
        store.upsert([f"r{i}" for i in range(n)], ["text"] * n, metadata, vectors)
        where = parse_filter({"group": "rare"})
        rare = [i for i in range(n) if i % 83 == 0]
        query = unit_vectors(1, DIM, 9)
        exact = sorted(rare, key=lambda i: -float(vectors[i] @ query[0]))
        hits = store.dense(query, 10, where)[0]
        assert [h for h, _ in hits] == [f"r{i}" for i in exact[:10]]
        assert len(store.dense(query, 50, where)[0]) == len(rare)
        if planner == "index only":  # the index came up short, and the exact run made it up
            assert counted
        unfiltered = store.dense(query, 10)[0]
        assert len(unfiltered) == 10
        for id_, score in unfiltered:
            assert score == pytest.approx(float(vectors[int(id_[1:])] @ query[0]), abs=1e-5)
    finally:
        store.close()


def test_bad_input_and_bad_servers_are_clear_one_line_errors(postgres_server, tmp_path):
    store = _open(postgres_server, "bad_input", tmp_path)
    try:
        with pytest.raises(InvalidInputError, match="NUL character"):
            store.upsert(["a"], ["nul \x00 inside"], [{}], unit_vectors(1, DIM))
        assert store.count() == 0
    finally:
        store.close()
    with pytest.raises(CollectionError, match="holds 8-d vectors"):
        _open(postgres_server, "bad_input", tmp_path, dim=16)
    unreachable = CollectionConfig(
        model="pg-test", dim=DIM, store=f"postgresql://postgres@/postgres?host={tmp_path}"
    )
    with pytest.raises(StorageError) as caught:
        open_store(tmp_path, unreachable)
    assert "\n" not in str(caught.value) and "PostgreSQL at postgresql://" in str(caught.value)
    with pytest.raises(InvalidInputError, match="table="):
        _open(postgres_server, "1-bad name", tmp_path)


def _sections(folder: Path, chars: int = 1500) -> list[Path]:
    """This project's README and docs cut at their '## ' headings (the first `chars` of each):
    ~45 small, real Markdown files."""
    folder.mkdir()
    written = []
    for source in [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]:
        parts = re.split(r"(?m)^(?=## )", source.read_text(encoding="utf-8"))
        for number, part in enumerate(p for p in parts if len(p.strip()) > 200):
            path = folder / f"{source.stem}-{number:02d}.md"
            path.write_text(part[:chars], encoding="utf-8")
            written.append(path)
    return written


def test_a_collection_on_postgres_ingests_and_searches_like_the_local_one(
    postgres_server, tmp_path
):
    files = _sections(tmp_path / "docs")
    for path in files[6:]:
        path.unlink()
    url = postgres_server.url_for("collection_docs")
    pg_kb, local_kb = Collection.open(tmp_path / "pg", store=url), Collection.open(tmp_path / "loc")
    with pg_kb as pg, local_kb as loc:
        assert pg.config.store == url
        reports = [kb.ingest(tmp_path / "docs") for kb in (pg, loc)]
        assert not reports[0].failed and len(reports[0].added) == 6
        assert sorted(pg._store.ids()) == sorted(loc._store.ids())
        again = pg.ingest(tmp_path / "docs")
        assert len(again.unchanged) == 6 and not again.added
        query = "how do I install and run the tests?"
        dense = [[h.id for h in kb.search(query, k=5, mode="dense")] for kb in (pg, loc)]
        assert dense[0] == dense[1]
        hybrid = pg.search(query, k=5)
        assert hybrid and {h.id for h in hybrid} & set(dense[1])
        keyword = pg.search("pytest make test", k=3, mode="keyword")
        assert keyword and all("test" in h.text.lower() for h in keyword)
        name = files[0].name
        filtered = pg.search(query, k=5, filter={"file_name": name})
        assert filtered and all(h.metadata["file_name"] == name for h in filtered)
        assert pg.count({"file_name": name}) == loc.count({"file_name": name})
        assert pg._store.check() == []
        stored = len(pg)
    with Collection.open(tmp_path / "pg") as reopened:  # the URL comes from collection.toml
        assert len(reopened) == stored


def test_a_server_that_goes_away_mid_ingest_leaves_no_half_written_file(postgres_server, tmp_path):
    """The server is crashed (pg_ctl -m immediate) while files are being committed: the ingest
    fails with one clear line; once the server is back every file is fully in or not at all,
    and running the ingest again completes it."""
    files = _sections(tmp_path / "docs", chars=800)
    for path in files[20:]:
        path.unlink()
    files = files[:20]
    url = postgres_server.url_for("fault_ingest")
    kb = Collection.open(tmp_path / "kb", store=url)
    stopper: list[threading.Thread] = []

    def on_progress(event: str, n: int) -> None:
        if event != "files_done":
            return
        if not stopper and len(kb._store.sources()) >= 3:
            stopper.append(threading.Thread(target=postgres_server.stop, args=("immediate",)))
            stopper[0].start()
        elif stopper:
            threading.Event().wait(0.2)  # slow the rest down so the crash lands in the run

    try:
        with pytest.raises(StorageError) as caught:
            # batch_tokens=1: a commit per file, so the crash lands between commits
            kb.ingest(tmp_path / "docs", on_progress=on_progress, batch_tokens=1)
        message = str(caught.value)
        assert "\n" not in message and "PostgreSQL at" in message, message
        stopper[0].join()
        started = time.perf_counter()
        with pytest.raises(StorageError, match="connection failed or lost"):
            kb.count()  # while it is down: at once, not after a timeout
        assert time.perf_counter() - started < 5
        postgres_server.start()
        store = kb._store
        sources = store.sources()
        assert 3 <= len(sources) < len(files)
        stored = set(store.ids())
        listed = {chunk for record in sources for chunk in record.chunk_ids}
        assert stored == listed  # no chunk without its file's entry, no entry missing chunks
        assert store.check() == []
        report = kb.ingest(tmp_path / "docs")
        assert not report.failed
        assert len(report.added) == len(files) - len(sources)
        assert len(report.unchanged) == len(sources)
        assert len(store.sources()) == len(files) and store.check() == []
        assert kb.search("crash-safe ingest", k=3)
    finally:
        kb.close()
        if postgres_server.pid() is None:
            postgres_server.start()


def test_rows_round_trip_exactly(postgres_server, tmp_path):
    store = _open(postgres_server, "round_trip", tmp_path, dim=384)
    try:
        vectors = unit_vectors(3, 384, 4)
        odd = {"f": 1e300, "g": float(2**70), "i": 2**70, "s": "\u00e9\U0001f600", "n": [1, None]}
        store.upsert(["a", "b", "c"], ["x", "y", "z \u00e9"], [{}, {}, odd], vectors)
        np.testing.assert_array_equal(store.vectors(["c", "a", "nope"])[:2], vectors[[2, 0]])
        assert store.vectors(["nope"]).tolist() == [[0.0] * 384]
        (chunk,) = store.get(["c"])
        assert chunk.text == "z \u00e9" and chunk.metadata == odd
        assert [type(v) for v in chunk.metadata.values()] == [type(v) for v in odd.values()]
    finally:
        store.close()


def test_halfvec_tables_take_half_the_index_and_keep_their_type(postgres_server, tmp_path):
    """`?vectors=halfvec`: float16 column and HNSW index, about half the size of float32's for
    the same rows; searches find the same nearest rows with scores within half precision; the
    type is fixed when the tables are created."""
    import psycopg

    from embedstack.store.postgres import connection_url

    vectors, ids = unit_vectors(300, 384, 9), [f"v{i}" for i in range(300)]
    stores = {
        kind: _open(postgres_server, f"kinds_{kind}", tmp_path / kind, 384, kind)
        for kind in ("vector", "halfvec")
    }
    try:
        for store in stores.values():
            store.upsert(ids, ids, [{}] * len(ids), vectors)
        with psycopg.connect(connection_url(postgres_server.url)) as conn:
            kinds, sizes = {}, {}
            for kind in stores:
                kinds[kind] = conn.execute(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attname = 'embedding'",
                    (f"kinds_{kind}",),
                ).fetchone()[0]
                sizes[kind] = conn.execute(
                    "SELECT pg_relation_size(%s::regclass)", (f"kinds_{kind}__hnsw",)
                ).fetchone()[0]
        assert kinds == {"vector": "vector(384)", "halfvec": "halfvec(384)"}
        assert sizes["halfvec"] < 0.7 * sizes["vector"]  # 0.65 here; 8 kB pages, graph links
        half = stores["halfvec"]
        np.testing.assert_allclose(half.vectors(ids[:5]), vectors[:5], atol=1e-3)
        for row in (0, 7, 123):
            found = half.dense(vectors[row : row + 1], k=5)[0]
            assert found[0][0] == ids[row] and found[0][1] == pytest.approx(1.0, abs=2e-3)
            for id_, score in found:
                exact = float(vectors[int(id_[1:])] @ vectors[row])
                assert score == pytest.approx(exact, abs=2e-3)
    finally:
        for store in stores.values():
            store.close()
    reopened = _open(postgres_server, "kinds_halfvec", tmp_path / "again", dim=384)
    try:  # without ?vectors= the tables' own type is used
        assert reopened.dense(vectors[:1], k=1)[0][0][0] == ids[0]
    finally:
        reopened.close()
    with pytest.raises(CollectionError, match="holds halfvec vectors"):
        _open(postgres_server, "kinds_halfvec", tmp_path / "x", 384, "vector")
    with pytest.raises(InvalidInputError, match="vectors='float8'"):
        _open(postgres_server, "kinds_other", tmp_path / "y", 384, "float8")
