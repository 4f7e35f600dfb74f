"""BM25 over the in-memory mirror gives the SQL path's hits and scores, and stays current.

Real text (this project's docs, cut into paragraphs, each file a document) in a real local
store; every check compares the mirror against the SQL scoring of the same committed state.
"""

from __future__ import annotations

import random
import re
import sqlite3

import numpy as np
import pytest

from embedstack.config import CollectionConfig
from embedstack.store.analyzer import Analyzer
from embedstack.store.factory import open_store
from embedstack.store.filters import parse_filter
from embedstack.store.local import LocalStore
from tests.conftest import PROJECT, unit_vectors

DIM = 8


def paragraphs() -> tuple[list[str], list[dict]]:
    """Paragraphs of the docs; every seventh without a source (its own document)."""
    texts, metas = [], []
    for path in sorted((PROJECT / "docs").glob("*.md"))[:6]:
        for n, text in enumerate(p for p in path.read_text().split("\n\n") if p.strip()):
            texts.append(text)
            metas.append({"n": n} if n % 7 == 0 else {"source": path.name, "n": n})
    return texts, metas


TEXTS, METAS = paragraphs()
IDS = [f"p{i}" for i in range(len(TEXTS))]


def queries(count: int = 60) -> list[str]:
    words = sorted({w for t in TEXTS for w in re.findall(r"[a-z]{3,}", t.lower())})
    rng = random.Random(18)
    return [" ".join(rng.sample(words, rng.randint(1, 6))) for _ in range(count)] + [
        "the keyword index",  # common and stop words
        "zzzz-not-a-word",  # no postings at all
    ]


@pytest.fixture
def store(tmp_path):
    opened = open_store(tmp_path / "kb", CollectionConfig(model="memory-test", dim=DIM))
    assert isinstance(opened, LocalStore)
    opened.upsert(IDS, TEXTS, METAS, unit_vectors(len(IDS), DIM, 3))
    yield opened
    opened.close()


def both(store: LocalStore, query: str, k: int = 20, where=None):
    """(SQL hits, mirror hits) for the same query and state."""
    memory = store.keywords.memory
    memory.mode = "off"
    sql = store.keyword(query, k, where)
    memory.mode = "eager"
    mirrored = store.keyword(query, k, where)
    assert memory._mirror is not None
    return sql, mirrored


def assert_same(store: LocalStore, where=None, k: int = 20) -> None:
    for query in queries():
        sql, mirrored = both(store, query, k, where)
        assert [i for i, _ in mirrored] == [i for i, _ in sql], query
        assert [s for _, s in mirrored] == pytest.approx([s for _, s in sql], rel=1e-12)


def test_the_mirror_ranks_and_scores_as_sql_does(store):
    assert len(TEXTS) > 200
    assert_same(store)
    assert_same(store, k=3)
    assert_same(store, where=parse_filter({"n": {"$lt": 12}}))


def test_without_the_document_mix_too(tmp_path):
    config = CollectionConfig(model="memory-test", dim=DIM, bm25_document_weight=0.0)
    store = open_store(tmp_path / "kb", config)
    store.upsert(IDS, TEXTS, METAS, unit_vectors(len(IDS), DIM, 3))
    assert_same(store)
    store.close()


def test_writes_are_caught_up_without_a_reload(store):
    assert_same(store)
    loaded = store.keywords.memory._mirror
    store.delete(IDS[:3])
    store.upsert(["new"], ["Reciprocal rank fusion of keyword hits"], [{"source": "x.md"}],
                 unit_vectors(1, DIM, 4))  # fmt: skip
    store.upsert([IDS[10]], ["A changed paragraph about fusion"], [METAS[10]],
                 unit_vectors(1, DIM, 5))  # fmt: skip
    assert_same(store)
    caught_up = store.keywords.memory._mirror
    assert caught_up is not loaded and caught_up.segments[0] is loaded.segments[0]
    assert len(caught_up.segments) == 2  # one catch-up over the three writes
    hits = dict(store.keyword("reciprocal fusion", 50))
    assert "new" in hits and IDS[10] in hits and IDS[0] not in hits


def test_the_newest_document_emptied_then_compaction(store):
    """Two catch-ups that went wrong: the newest document losing its last chunk (its id was
    past the mirror's table of document lengths: an IndexError in every search), and
    compaction renumbering every row (the mirror kept the old numbers: other rows' texts)."""
    assert_same(store)
    store.upsert(["late-1", "late-2"], ["A late paragraph on fusion", "Late keyword notes"],
                 [{"source": "late.md"}] * 2, unit_vectors(2, DIM, 7))  # fmt: skip
    assert_same(store)
    store.delete(["late-1", "late-2"])
    assert_same(store)
    store.delete(IDS[:4])
    assert_same(store)  # the mirror has holes where those rows were
    store.compact()
    assert_same(store)
    assert IDS[4] in dict(store.keyword(TEXTS[4][:80], 5))


def test_another_writers_commits_are_seen(store, tmp_path):
    assert_same(store)
    other = open_store(tmp_path / "kb", CollectionConfig(model="memory-test", dim=DIM))
    other.upsert(["elsewhere"], ["Quokkas live on Rottnest Island"], [{}], unit_vectors(1, DIM, 6))
    other.delete([IDS[5]])
    other.close()
    assert_same(store)
    assert [i for i, _ in store.keyword("quokka island", 5)] == ["elsewhere"]
    assert IDS[5] not in dict(store.keyword(TEXTS[5][:80], 50))


def test_a_large_change_or_another_analyzer_reloads(store, tmp_path):
    assert_same(store)
    store.delete(IDS[: len(IDS) // 2])  # past the dead-postings limit: loaded afresh
    assert_same(store)
    assert len(store.keywords.memory._mirror.segments) == 1
    store.close()
    # Reopened with another analyzer, the index is rebuilt and the mirror follows it.
    plain = LocalStore(tmp_path / "kb", DIM, analyzer=Analyzer(language="none"))
    assert_same(plain)
    plain.close()


def test_auto_loads_in_the_background_from_the_second_search(store):
    memory = store.keywords.memory
    assert memory.mode == "auto"
    first = store.keyword("keyword index", 10)
    assert memory._mirror is None  # one search reads SQL and loads nothing
    store.keyword("keyword index", 10)
    memory.wait(30)
    assert memory._mirror is not None
    assert store.keyword("keyword index", 10) == first


def test_tables_that_do_not_add_up_are_left_to_sql(store, tmp_path):
    with sqlite3.connect(tmp_path / "kb" / "embedstack.db") as db:
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'keyword_terms'")
    memory = store.keywords.memory
    memory.mode = "eager"
    mirrored = store.keyword("keyword index", 10)
    memory.mode = "off"
    sql = store.keyword("keyword index", 10)
    assert memory._mirror is None and mirrored == sql
    assert np.isfinite([s for _, s in sql]).all()
