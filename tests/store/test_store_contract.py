"""The contract every store backend passes (`store/base.py`).

Adding a backend means adding one entry to `BACKENDS` (a function that opens an empty store
of the given dimension in a fresh place); every test here then runs against it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from embedstack.config import CollectionConfig
from embedstack.errors import EmbedstackError, InvalidInputError
from embedstack.store.base import KEYWORD, MANIFEST, FileRows, IngestStore
from embedstack.store.factory import open_store
from embedstack.store.filters import matches, parse_filter
from embedstack.types import SourceRecord
from tests.conftest import unit_vectors

DIM = 16


def _local(folder: Path, dim: int) -> IngestStore:
    return open_store(folder, CollectionConfig(model="contract-test", dim=dim))


def _milvus_lite(folder: Path, dim: int) -> IngestStore:
    pytest.importorskip("pymilvus", reason="Milvus tests need the `milvus` extra (pymilvus)")
    pytest.importorskip("milvus_lite", reason="Milvus Lite tests need the `milvus-lite` package")
    config = CollectionConfig(model="contract-test", dim=dim, store="milvus-lite:milvus.db")
    return open_store(folder, config)


def _milvus_server(folder: Path, dim: int) -> IngestStore:
    from tests.store.milvus_server import server_uri

    config = CollectionConfig(model="contract-test", dim=dim, store=server_uri())
    return open_store(folder, config)  # the collection's name comes from the folder


def _postgres(folder: Path, dim: int) -> IngestStore:
    """Tables of their own per folder, on the session's server (tests/store/conftest.py)."""
    from tests.store.postgres_server import URL_ENV

    url = os.environ.get(URL_ENV)
    if not url:
        pytest.skip("no PostgreSQL server for the tests")
    table = "t_" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16]
    config = CollectionConfig(model="contract-test", dim=dim, store=f"{url}&table={table}")
    return open_store(folder, config)


BACKENDS: dict[str, Callable[[Path, int], IngestStore]] = {
    "local": _local,
    "milvus-lite": _milvus_lite,
    "milvus-server": _milvus_server,
    "postgresql": _postgres,
}
SERVERS = {"postgresql": "postgres_url"}  # backends whose server a fixture starts

ROWS = {
    "apple": ("Apples grow on trees in cool orchards.", {"kind": "fruit", "price": 3, "red": True}),
    "banana": ("Bananas are yellow tropical fruit.", {"kind": "fruit", "price": 1, "red": False}),
    "carrot": ("Carrots are orange root vegetables.", {"kind": "vegetable", "price": 2}),
    "radish": ("Radishes are small red root vegetables.", {"kind": "vegetable", "red": True}),
    "pizza": ("Pizza is baked dough with tomato and cheese.", {"kind": "dish", "price": 9.5}),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request, tmp_path):
    if request.param in SERVERS:
        request.getfixturevalue(SERVERS[request.param])
    opened = BACKENDS[request.param](tmp_path / "store", DIM)
    yield opened
    opened.close()


@pytest.fixture
def filled(store):
    ids = list(ROWS)
    store.upsert(
        ids, [ROWS[i][0] for i in ids], [ROWS[i][1] for i in ids], unit_vectors(len(ids), DIM, 7)
    )
    return store


def contents(store: IngestStore) -> dict:
    return {c.id: (c.text, c.metadata) for c in store.get(store.ids())}


def test_rows_round_trip_in_insertion_order(filled):
    assert filled.ids() == list(ROWS)
    assert filled.count() == len(ROWS)
    chunks = filled.get(["pizza", "nope", "apple", "pizza"])
    assert [c.id for c in chunks] == ["pizza", "apple"]
    assert chunks[1].text == ROWS["apple"][0] and chunks[1].metadata == ROWS["apple"][1]


def test_ids_under_a_filter_keep_insertion_order(filled):
    where = parse_filter({"kind": {"$in": ["vegetable", "dish"]}})
    assert filled.ids(where) == ["carrot", "radish", "pizza"]
    assert filled.ids(parse_filter({"kind": "nothing"})) == []
    assert filled.ids(parse_filter({})) == list(ROWS)


def test_upsert_replaces_by_id_and_delete_counts_what_existed(filled):
    replacement = unit_vectors(1, DIM, 99)
    filled.upsert(["apple"], ["Green apples."], [{"kind": "fruit", "price": 4}], replacement)
    assert filled.count() == len(ROWS)
    assert filled.get(["apple"])[0].text == "Green apples."
    np.testing.assert_allclose(filled.vectors(["apple"])[0], replacement[0], atol=1e-6)
    assert filled.dense(replacement, 1)[0][0][0] == "apple"
    assert filled.delete(["apple", "banana", "not-there"]) == 2
    assert filled.ids() == ["carrot", "radish", "pizza"]
    remaining = dict(filled.dense(replacement, 10)[0])
    assert remaining and "apple" not in remaining


def test_a_failing_write_changes_nothing(filled):
    before = contents(filled)
    with pytest.raises(InvalidInputError):
        filled.upsert(["apple", "new"], ["a", "b"], [{}, {}], unit_vectors(1, DIM))  # 1 vector
    assert contents(filled) == before


def test_dense_returns_ids_with_cosine_best_first(filled):
    vectors = filled.vectors(list(ROWS))
    found = filled.dense(vectors[[2]], 3)[0]
    assert found[0][0] == "carrot" and found[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    np.testing.assert_array_equal(filled.vectors(["unknown"]), np.zeros((1, DIM), np.float32))


FILTERS = [
    {"kind": "fruit"},
    {"price": {"$gte": 2}},
    {"red": True},
    {"red": {"$ne": True}},
    {"kind": {"$in": ["dish", "vegetable"]}, "price": {"$lt": 5}},
    {"$or": [{"kind": "dish"}, {"red": True}]},
    {"kind": {"$nin": ["fruit"]}},
    {"price": {"$gt": "2"}},  # a string never compares with numbers
    {"kind": "nothing"},
]


@pytest.mark.parametrize("spec", FILTERS)
def test_filters_select_exactly_what_matches_says(filled, spec):
    where = parse_filter(spec)
    expected = {i for i, (_, meta) in ROWS.items() if matches(where, meta)}
    assert filled.count(where) == len(expected)
    query = unit_vectors(1, DIM, 3)
    dense = filled.dense(query, 10, where)[0]
    assert {i for i, _ in dense} == expected  # k hits whenever k rows match
    if KEYWORD in filled.capabilities:
        hits = filled.keyword("fruit vegetables tomato red yellow", 10, where)
        assert {i for i, _ in hits} <= expected


def test_keyword_search_finds_terms_and_respects_filters(filled):
    if KEYWORD not in filled.capabilities:
        pytest.skip("no keyword capability")
    assert filled.keyword("orange root vegetables", 2)[0][0] == "carrot"
    assert [i for i, _ in filled.keyword("root", 5, parse_filter({"red": True}))] == ["radish"]
    assert filled.keyword("zzzz qqqq", 5) == []
    filled.delete(["carrot"])
    assert "carrot" not in dict(filled.keyword("orange root vegetables", 5))


def test_manifest_swaps_a_files_chunks_in_one_write(store):
    if MANIFEST not in store.capabilities:
        pytest.skip("no manifest capability")
    first = SourceRecord("/docs/a.md", "h1", "r", "markdown", ("a#0", "a#1"), 1.0)
    store.replace_source(first, ["one", "two"], [{}, {}], unit_vectors(2, DIM))
    assert store.source("/docs/a.md") == first and store.ids() == ["a#0", "a#1"]
    second = SourceRecord("/docs/a.md", "h2", "r", "markdown", ("a#0",), 2.0)
    assert store.replace_source(second, ["new one"], [{}], unit_vectors(1, DIM, 5)) == 2
    assert store.ids() == ["a#0"] and store.get(["a#0"])[0].text == "new one"
    assert store.sources() == [second]
    assert store.remove_source("/docs/a.md") == 1
    assert store.count() == 0 and store.sources() == [] and store.source("/docs/a.md") is None


def test_manifest_replaces_several_files_in_one_call(store):
    """Ingest commits a batch of files together; each file's rows and entry stay its own."""
    if MANIFEST not in store.capabilities:
        pytest.skip("no manifest capability")
    a = SourceRecord("/docs/a.md", "h1", "r", "markdown", ("a#0", "a#1"), 1.0)
    b = SourceRecord("/docs/b.md", "h1", "r", "markdown", ("b#0",), 1.0)
    vectors = unit_vectors(3, DIM, 9)
    batch = [FileRows(a, ["a0", "a1"], [{"n": 0}, {"n": 1}], vectors[:2]),
             FileRows(b, ["b0"], [{"n": 2}], vectors[2:])]  # fmt: skip
    assert store.replace_sources(batch) == [0, 0]
    assert sorted(store.ids()) == ["a#0", "a#1", "b#0"]
    assert np.allclose(store.vectors(["b#0", "a#1"]), vectors[[2, 1]], atol=1e-6)
    assert [c.metadata["n"] for c in store.get(["a#1", "b#0"])] == [1, 2]
    a2 = SourceRecord("/docs/a.md", "h2", "r", "markdown", ("a#0",), 2.0)
    c = SourceRecord("/docs/c.md", "h1", "r", "markdown", ("c#0",), 2.0)
    again = [FileRows(a2, ["new a0"], [{}], unit_vectors(1, DIM, 3)),
             FileRows(c, ["c0"], [{}], unit_vectors(1, DIM, 4))]  # fmt: skip
    assert store.replace_sources(again) == [2, 0]
    assert sorted(store.ids()) == ["a#0", "b#0", "c#0"]
    assert sorted(s.path for s in store.sources()) == ["/docs/a.md", "/docs/b.md", "/docs/c.md"]
    bad = [FileRows(SourceRecord("/docs/d.md", "h", "r", "markdown", ("d#0",), 3.0), ["d0"],
                    [{}], unit_vectors(1, DIM + 1, 1))]  # fmt: skip
    with pytest.raises(InvalidInputError):
        store.replace_sources([FileRows(c, ["c again"], [{}], unit_vectors(1, DIM, 6)), *bad])
    # The bad file is refused whole; c is old or new (Milvus writes file by file), never half.
    assert store.source("/docs/d.md") is None and store.get(["d#0"]) == []
    assert store.get(["c#0"])[0].text in ("c0", "c again")


def test_a_file_failing_inside_a_batch_leaves_every_file_whole(store, request):
    """A file whose rows fail inside the write (metadata JSON cannot hold) undoes the whole
    batch on the stores with transactions (local, PostgreSQL): the file before it in the
    batch keeps its old rows and entry. Milvus writes file by file: there it is old or new."""
    if MANIFEST not in store.capabilities:
        pytest.skip("no manifest capability")
    old = SourceRecord("/docs/a.md", "h1", "r", "markdown", ("a#0",), 1.0)
    store.replace_sources([FileRows(old, ["old a"], [{}], unit_vectors(1, DIM, 1))])
    new = SourceRecord("/docs/a.md", "h2", "r", "markdown", ("a#0", "a#1"), 2.0)
    bad = SourceRecord("/docs/e.md", "h1", "r", "markdown", ("e#0",), 2.0)
    batch = [FileRows(new, ["new a0", "new a1"], [{}, {}], unit_vectors(2, DIM, 2)),
             FileRows(bad, ["e0"], [{"when": object()}], unit_vectors(1, DIM, 3))]  # fmt: skip
    with pytest.raises((EmbedstackError, TypeError, ValueError)):
        store.replace_sources(batch)
    assert store.source("/docs/e.md") is None and store.get(["e#0"]) == []
    kept = store.source("/docs/a.md")
    texts = [c.text for c in store.get(["a#0", "a#1"])]
    if request.node.callspec.params["store"] in ("local", "postgresql"):
        assert kept == old and texts == ["old a"]
    else:
        assert (kept, texts) in ((old, ["old a"]), (new, ["new a0", "new a1"]))
    assert store.check() == []


def test_a_healthy_store_checks_clean(filled):
    assert filled.check() == []


def test_readers_in_threads_see_committed_rows_only(filled):
    """Searches from 4 threads while one thread upserts and deletes: no errors, and every id
    returned has the text of one committed write."""
    errors: list[BaseException] = []
    stop = threading.Event()
    query = unit_vectors(1, DIM, 11)

    def write() -> None:
        for round_ in range(40):
            ids = [f"w{round_}-{n}" for n in range(5)]
            filled.upsert(ids, [f"text of {i}" for i in ids], [{"round": round_}] * 5,
                          unit_vectors(5, DIM, round_))  # fmt: skip
            if round_ % 2:
                filled.delete(ids[:3])
        stop.set()

    def read() -> None:
        try:
            while not stop.is_set():
                found = [i for i, _ in filled.dense(query, 20)[0]]
                for chunk in filled.get(found):
                    assert chunk.text in (ROWS.get(chunk.id, ("",))[0], f"text of {chunk.id}")
                assert filled.count() >= len(ROWS)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            stop.set()

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    write()
    for thread in readers:
        thread.join()
    assert not errors, errors[0]
    assert filled.count() == len(ROWS) + 20 * 5 + 20 * 2


CLOSE_WHILE_BUSY = """
import sys, threading
from pathlib import Path
from embedstack.errors import StorageError
from tests.conftest import unit_vectors
from tests.store.test_store_contract import BACKENDS, DIM

store = BACKENDS[sys.argv[1]](Path(sys.argv[2]), DIM)
store.upsert([f"s{i}" for i in range(50)], ["seed text"] * 50, [{}] * 50,
             unit_vectors(50, DIM))
started, errors, stops = threading.Barrier(6), [], []

def loop(write):
    started.wait()
    n = 0
    try:
        while True:
            n += 1
            if write:
                ids = [f"w{n}-{i}" for i in range(20)]
                store.upsert(ids, ["busy writer"] * 20, [{"n": n}] * 20, unit_vectors(20, DIM, n))
                store.delete(ids[:10])
            else:
                store.dense(unit_vectors(1, DIM, n), 10)
                store.get(store.ids()[:50])
                store.count()
    except StorageError as exc:
        stops.append(str(exc))
    except BaseException as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=loop, args=(i == 0,)) for i in range(5)]
for thread in threads:
    thread.start()
started.wait()
threading.Event().wait(0.5)
store.close()
for thread in threads:
    thread.join(timeout=60)
assert not errors, errors
assert len(stops) == 5 and all("closed" in s for s in stops), stops
print("ok")
"""


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_close_waits_for_calls_in_progress_in_other_threads(request, tmp_path, backend):
    """Closing while other threads read and write: their calls finish, later calls get a
    clear 'closed' error, and nothing crashes (closing a connection under a running SQLite
    statement used to kill the process with SIGSEGV)."""
    if backend in SERVERS:
        request.getfixturevalue(SERVERS[backend])
    import subprocess
    import sys
    import textwrap

    from tests.conftest import PROJECT

    BACKENDS[backend](tmp_path / "probe", DIM).close()  # skips here when a backend cannot run
    for attempt in range(3):  # the crash it guards against was a race: try it more than once
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CLOSE_WHILE_BUSY), backend,
             str(tmp_path / f"store{attempt}")],
            cwd=PROJECT, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_connections_of_finished_threads_are_closed(filled):
    """A thread-per-request server must not run out of file descriptors."""
    for _ in range(3):
        threads = [threading.Thread(target=filled.count) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    opened = len(os.listdir("/proc/self/fd"))
    threads = [threading.Thread(target=filled.count) for _ in range(50)]
    for thread in threads:
        thread.start()
        thread.join()
    assert len(os.listdir("/proc/self/fd")) <= opened + 4
