"""Collections on disk: upsert, delete, reopen, model checks, bad input that changes nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from embedstack import Collection
from embedstack.errors import CollectionError, InvalidInputError
from tests.conftest import PROJECT, unit_vectors

TEXTS = {
    "paris": "Paris is the capital and largest city of France.",
    "berlin": "Berlin is the capital of Germany.",
    "banana": "Bananas are an elongated, edible fruit.",
    "python": "Python is a programming language that lets you work quickly.",
}


def snapshot(kb: Collection) -> dict:
    chunks = kb.get(kb.ids())
    return {c.id: (c.text, c.metadata) for c in chunks}


@pytest.fixture
def kb(tmp_path, model):
    with Collection.open(tmp_path / "kb", model) as collection:
        collection.add(
            list(TEXTS.values()),
            ids=list(TEXTS),
            metadata=[{"n": i} for i in range(len(TEXTS))],
        )
        yield collection


def test_search_finds_the_meaningful_match(kb):
    hits = kb.search("Which city is the French capital?", k=2)
    assert [h.id for h in hits][0] == "paris"
    assert hits[0].score > hits[1].score
    assert hits[0].text == TEXTS["paris"] and hits[0].metadata == {"n": 0}


def test_similar_leaves_the_record_out_and_takes_the_same_k_as_search(kb):
    assert [h.id for h in kb.similar("berlin", k=1)] == ["paris"]  # capitals, not fruit
    assert len(kb.similar("berlin", k=10_000)) == 3  # the largest k a search takes
    for bad in (0, 10_001):
        with pytest.raises(InvalidInputError, match="^k "):
            kb.similar("berlin", k=bad)


def test_upsert_replaces_text_vector_and_metadata(kb):
    kb.add(["Madrid is the capital of Spain."], ids=["paris"], metadata=[{"n": 99}])
    assert kb.count() == 4
    assert kb.get("paris")[0].text == "Madrid is the capital of Spain."
    assert kb.search("Spanish capital", k=1, mode="dense")[0].id == "paris"
    # Through the collection's cache: exactly the vectors that were stored.
    old_vector, new_vector = kb.model.encode([TEXTS["paris"], "Madrid is the capital of Spain."])
    scores = {h.id: h.score for h in kb.search(old_vector, k=10)}
    assert len(scores) == 4  # the old vector is gone, not kept beside the new one
    assert scores["paris"] == pytest.approx(float(old_vector @ new_vector), abs=1e-5)


def test_delete_then_reopen_gives_exactly_what_was_committed(tmp_path, model):
    folder = tmp_path / "kb"
    with Collection.open(folder, model) as kb:
        kb.add(list(TEXTS.values()), ids=list(TEXTS), metadata=[{"k": k} for k in TEXTS])
        assert kb.delete(["banana", "not-there"]) == 1
        kb.add(["Rome is the capital of Italy."], ids=["rome"], metadata=[{"k": "rome"}])
        before = snapshot(kb)
        query = model.encode("capital of Italy")
        hits_before = [(h.id, round(h.score, 5)) for h in kb.search(query, k=10)]
    with Collection.open(folder) as kb:
        assert snapshot(kb) == before
        assert kb.count() == 4 and "banana" not in before
        assert [(h.id, round(h.score, 5)) for h in kb.search(query, k=10)] == hits_before
        assert hits_before[0][0] == "rome"


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_round_trip_for_each_index(tmp_path, index):
    folder = tmp_path / index
    vectors = unit_vectors(300, 384, seed=1)
    ids = [f"v{i}" for i in range(300)]
    with Collection.open(folder, index=index) as kb:
        kb.add([f"row {i}" for i in range(300)], ids=ids, embeddings=vectors)
        kb.delete(ids[:100])
        kb.add(["moved"], ids=["v150"], embeddings=vectors[:1])  # same id, new vector
    with Collection.open(folder) as kb:
        assert kb.config.index == index and kb.count() == 200
        top = kb.search(vectors[0], k=3)
        assert top[0].id == "v150" and top[0].score == pytest.approx(1.0, abs=1e-5)
        hits = kb.search(vectors[5], k=200)
        assert len(hits) == 200 and not {h.id for h in hits} & set(ids[:100])


def test_index_is_rebuilt_when_the_process_dies_before_checkpointing(tmp_path):
    """A crash after commit loses no data: the FAISS file is rebuilt from SQLite on open."""
    folder = tmp_path / "kb"
    script = textwrap.dedent(
        f"""
        import os, numpy as np
        from embedstack import Collection
        from tests.conftest import unit_vectors
        kb = Collection.open({str(folder)!r})
        vectors = unit_vectors(50, 384, seed=2)
        kb.add([f"t{{i}}" for i in range(50)], ids=[f"id{{i}}" for i in range(50)],
               embeddings=vectors)
        kb.close()
        kb = Collection.open({str(folder)!r})
        kb.delete(["id0", "id1"])
        os._exit(9)  # no close(): the checkpoint on disk is now stale
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT, check=False)
    with Collection.open(folder) as kb:
        assert kb.count() == 48
        vectors = unit_vectors(50, 384, seed=2)
        assert kb.search(vectors[0], k=1)[0].id != "id0"
        assert kb.search(vectors[2], k=1)[0].id == "id2"


def test_a_second_process_sees_writes_of_the_first(tmp_path):
    folder = tmp_path / "kb"
    vectors = unit_vectors(2, 384, seed=4)
    with Collection.open(folder) as reader:
        reader.add(["first"], ids=["a"], embeddings=vectors[:1])
        assert reader.search(vectors[1], k=5)[0].id == "a"
        with Collection.open(folder) as writer:
            writer.add(["second"], ids=["b"], embeddings=vectors[1:])
        assert reader.search(vectors[1], k=5)[0].id == "b"


def test_opening_with_another_model_is_an_error(tmp_path):
    folder = tmp_path / "kb"
    Collection.open(folder).close()
    config = folder / "collection.toml"
    config.write_text(config.read_text().replace("all-MiniLM-L6-v2", "some-other-model"))
    with pytest.raises(CollectionError, match="built with model 'some-other-model'"):
        Collection.open(folder, "all-MiniLM-L6-v2")


def test_missing_folder_is_an_error_unless_creating(tmp_path):
    with pytest.raises(CollectionError, match="no collection at"):
        Collection.open(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()
    Collection.open(tmp_path / "nowhere").close()
    assert (tmp_path / "nowhere" / "collection.toml").is_file()


@pytest.mark.parametrize(
    "bad_call, message",
    [
        (lambda kb: kb.add(["fine", "   "], ids=["x", "y"]), "row 1 \\(id 'y'\\): text is empty"),
        (lambda kb: kb.add([""], ids=["x"]), "text is empty"),
        (lambda kb: kb.add(["a", "b"], ids=["d", "d"]), "duplicate id 'd'"),
        (lambda kb: kb.add(["a"], ids=["paris"], metadata=[{"x": object()}]), "JSON"),
        (lambda kb: kb.add(["a", "b"], ids=["only-one"]), "differ in length"),
        (lambda kb: kb.add(["a"], ids=["q"], embeddings=np.ones((1, 10))), "dimension: got 10"),
        (lambda kb: kb.search(np.ones(10), k=3), "dimension: got 10"),
        (lambda kb: kb.search("   ", k=3), "empty"),
        (lambda kb: kb.search("fine", k=0), "k must be at least 1"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(kb, bad_call, message):
    before = snapshot(kb)
    with pytest.raises(InvalidInputError, match=message):
        bad_call(kb)
    assert snapshot(kb) == before


def test_ids_default_to_content_hashes(tmp_path):
    with Collection.open(tmp_path / "kb") as kb:
        vectors = unit_vectors(2, 384)
        first = kb.add(["same text", "other"], embeddings=vectors)
        again = kb.add(["same text"], embeddings=vectors[:1])
        assert again[0] == first[0] and kb.count() == 2
