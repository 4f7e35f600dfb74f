"""The Milvus store beyond the shared contract: filter semantics against `matches`, crash safety
of its write protocol (a killed writer; a server killed mid-ingest), clear errors when the
server is unreachable, and what the test server listens on."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from embedstack.config import CollectionConfig
from embedstack.errors import StorageError
from embedstack.store.factory import open_store
from embedstack.store.filters import matches, parse_filter
from embedstack.types import SourceRecord
from tests.conftest import PROJECT, unit_vectors

pytest.importorskip("pymilvus", reason="Milvus tests need the `milvus` extra (pymilvus)")
pytest.importorskip("milvus_lite", reason="Milvus Lite tests need the `milvus-lite` package")

DIM = 8


def _lite(folder: Path):
    return open_store(folder, CollectionConfig(model="t", dim=DIM, store="milvus-lite:m.db"))


def _server(folder: Path):
    from tests.store.milvus_server import server_uri

    return open_store(folder, CollectionConfig(model="t", dim=DIM, store=server_uri()))


# Kinds that Milvus would mix up if compared loosely, awkward strings, and missing fields.
META = {
    "n1": {"v": 1, "s": "1", "tag": 'quote " and \\ back', "b": True},
    "n2": {"v": 1.5, "s": "héllo ☃", "tag": "plain"},
    "n3": {"v": True, "s": "2", "b": False},
    "n4": {"v": "1", "tag": "plain", "b": 1},
    "n5": {"v": 2**70, "other": [1, 2], "tag": None},
    "n6": {},
    "n7": {"v": -3, "s": "", "tag": "line\nbreak"},
}
SPECS = [
    {"v": 1},
    {"v": True},
    {"v": "1"},
    {"v": {"$ne": 1}},
    {"v": {"$gt": 1}},
    {"v": {"$gte": 1, "$lt": 2**70}},
    {"v": {"$lte": 2**70}},
    {"v": {"$in": [1, "1", True]}},
    {"v": {"$nin": [1, "1"]}},
    {"s": {"$gt": "1"}},
    {"s": {"$lt": "i"}},
    {"tag": 'quote " and \\ back'},
    {"tag": {"$ne": "plain"}},
    {"tag": "line\nbreak"},
    {"b": {"$ne": True}},
    {"b": 1},
    {"v": float("nan")},
    {"v": {"$ne": float("nan")}},
    {"$or": [{"s": "héllo ☃"}, {"$and": [{"b": False}, {"v": {"$nin": [2]}}]}]},
    {"missing": {"$nin": ["x"]}, "v": {"$ne": "1"}},
    {"other": {"$ne": 1}},
]


@pytest.fixture(scope="module")
def lite_rows(tmp_path_factory):
    store = _lite(tmp_path_factory.mktemp("filters"))
    ids = list(META)
    store.upsert(ids, [f"row {i}" for i in ids], [META[i] for i in ids], unit_vectors(7, DIM))
    yield store
    store.close()


@pytest.mark.parametrize("spec", SPECS, ids=range(len(SPECS)))
def test_filters_on_milvus_lite_agree_with_matches(lite_rows, spec):
    where = parse_filter(spec)
    expected = [i for i in META if matches(where, META[i])]
    assert lite_rows.ids(where) == expected
    assert lite_rows.count(where) == len(expected)
    found = lite_rows.dense(unit_vectors(1, DIM, 5), 10, where)[0]
    assert sorted(i for i, _ in found) == sorted(expected)  # k hits whenever k rows match


def test_metadata_round_trips_exactly(lite_rows):
    got = {c.id: c.metadata for c in lite_rows.get(list(META))}
    assert got["n5"] == META["n5"] and got["n1"] == META["n1"]
    assert lite_rows.get(["n6"])[0].metadata == {}


KILLED_WRITER = """
import sys
from pathlib import Path
from embedstack.config import CollectionConfig
from embedstack.store.factory import open_store
from embedstack.types import SourceRecord
from tests.conftest import unit_vectors

store = open_store(Path(sys.argv[1]), CollectionConfig(model="t", dim=8, store="milvus-lite:m.db"))
print("ready", flush=True)
n = 0
while True:
    n += 1
    ids = tuple(f"/f{n % 7}#{i}" for i in range(40))
    store.replace_source(SourceRecord(f"/f{n % 7}", f"h{n}", "r", "text", ids, float(n)),
                         [f"v{n}"] * 40, [{"n": n}] * 40, unit_vectors(40, 8, n))
"""


def _assert_whole_files(store) -> None:
    """Every manifest entry's chunks are all there, all from one write; nothing else is."""
    sources = store.sources()
    chunks = {c.id: c for c in store.get(store.ids())}
    assert store.count() == len(chunks) == sum(len(s.chunk_ids) for s in sources)
    for record in sources:
        texts = {chunks[c].text for c in record.chunk_ids}
        assert texts == {f"v{record.content_hash[1:]}"}, (record.path, texts)
    assert store.check() == []


def test_a_writer_killed_mid_ingest_leaves_whole_files_on_milvus_lite(tmp_path):
    folder = tmp_path / "kb"
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(folder)],
        cwd=PROJECT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    time.sleep(2.5)
    writer.kill()
    writer.wait()
    store = _lite(folder)  # recovery on open: the killed process's write is undone
    try:
        assert store.sources(), "the writer committed nothing before it was killed"
        _assert_whole_files(store)
    finally:
        store.close()


def test_an_unreachable_server_is_a_clear_storage_error(tmp_path, monkeypatch):
    import embedstack.store.milvus as milvus

    monkeypatch.setattr(milvus, "CALL_TIMEOUT_S", 2.0)
    config = CollectionConfig(model="t", dim=DIM, store="milvus://127.0.0.1:9")
    began = time.monotonic()
    with pytest.raises(StorageError, match=r"Milvus at http://127.0.0.1:9 .*failed while"):
        open_store(tmp_path, config)
    assert time.monotonic() - began < 30


def test_the_test_server_listens_on_loopback_only(tmp_path):
    from tests.store import milvus_server

    _server(tmp_path).close()
    addresses = milvus_server.listening_addresses(milvus_server.server_pids())
    assert addresses and all(a.startswith("127.0.0.1:") for a in addresses), addresses
    print(f"\nMilvus standalone start: {milvus_server.start_seconds} s; listening: {addresses}")


def test_server_killed_mid_ingest_gives_a_clear_error_and_no_half_written_file(
    tmp_path, monkeypatch
):
    """SIGKILL the Milvus server while files are being written: the writer gets a one-line
    StorageError; once the server is back, reopening recovers and every file is whole."""
    import embedstack.store.milvus as milvus
    from tests.store import milvus_server

    store = _server(tmp_path)
    monkeypatch.setattr(milvus, "CALL_TIMEOUT_S", 5.0)
    errors: list[Exception] = []
    written: list[int] = []

    def ingest() -> None:
        try:
            for n in range(1, 10_000):
                ids = tuple(f"/f{n % 5}#{i}" for i in range(300))
                record = SourceRecord(f"/f{n % 5}", f"h{n}", "r", "text", ids, float(n))
                store.replace_source(record, [f"v{n}"] * 300, [{"n": n}] * 300,
                                     unit_vectors(300, DIM, n))  # fmt: skip
                written.append(n)
        except Exception as exc:
            errors.append(exc)

    worker = threading.Thread(target=ingest)
    worker.start()
    deadline = time.monotonic() + 60
    while len(written) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    milvus_server.kill_server()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], StorageError), errors
    message = str(errors[0])
    assert "\n" not in message and "failed while writing /f" in message, message
    store.close()
    milvus_server.restart_server()
    monkeypatch.setattr(milvus, "CALL_TIMEOUT_S", 30.0)
    again = _server(tmp_path)
    try:
        assert len(again.sources()) == min(len(written), 5)
        _assert_whole_files(again)
        assert not math.isnan(float(np.sum(again.vectors(again.ids()[:5]))))
    finally:
        again.close()


def test_a_collection_on_milvus_lite_ingests_and_searches_hybrid(tmp_path):
    """The real model through the whole product: add, hybrid/keyword search with a filter,
    and an ingest that skips the unchanged file the second time."""
    from embedstack import Collection

    doc = tmp_path / "notes.md"
    doc.write_text("# Orchards\n\nApples grow on trees in cool orchards.\n", encoding="utf-8")
    with Collection.open(tmp_path / "kb", store="milvus-lite:rows.db") as kb:
        kb.add(
            texts=["Paris is the capital of France.", "Bananas are yellow.", "Paris, Texas."],
            ids=["paris", "banana", "texas"],
            metadata=[{"lang": "en"}, {"lang": "en"}, {"lang": "us"}],
        )
        hits = kb.search("French capital Paris", k=2, filter={"lang": "en"})
        assert [h.id for h in hits] == ["paris", "banana"]
        assert {h.id for h in kb.search("Paris", k=5, mode="keyword")} == {"paris", "texas"}
        assert kb.ingest([doc]).to_dict()["added"] == 1
        assert kb.ingest([doc]).to_dict()["unchanged"] == 1
        assert kb.search("where do apples grow?", k=1)[0].id.startswith(str(doc))
    assert (tmp_path / "kb" / "rows.db").exists()


def test_a_server_without_bm25_refuses_keyword_search_clearly(tmp_path):
    """Milvus 2.3 has no BM25 function: the store leaves "keyword" out and hybrid says so."""
    from embedstack import Collection
    from embedstack.errors import InvalidInputError
    from tests.store.milvus_server import server_uri

    with Collection.open(tmp_path / "kb", store=server_uri()) as kb:
        assert "keyword" not in kb.capabilities
        kb.add(texts=["Paris is the capital of France."], ids=["paris"])
        with pytest.raises(InvalidInputError, match="no keyword index"):
            kb.search("capital", k=1)
        assert kb.search("capital", k=1, mode="dense")[0].id == "paris"
