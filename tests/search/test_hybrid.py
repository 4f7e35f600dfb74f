"""Keyword, dense and hybrid search on a real collection: freshness, filters, hostile queries."""

from __future__ import annotations

import sqlite3

import pytest

from embedstack import Collection
from embedstack.errors import InvalidInputError

DOCS = {
    "printer": "The printer on floor two jams when paper is loaded crooked.",
    "vpn": "Connect to the VPN before opening the finance dashboard from home.",
    "xj": "Part XJ-9000 is the replacement fuser unit for the office copier.",
    "coffee": "The coffee machine in the kitchen needs descaling every month.",
    "parking": "Visitors park in bays 40 to 52 behind the main building.",
    "lunch": "Lunch is served in the canteen between noon and two o'clock.",
}
TEAMS = {"printer": "it", "vpn": "it", "xj": "it", "coffee": "facilities", "parking": "facilities",
         "lunch": "facilities"}  # fmt: skip


@pytest.fixture
def kb(tmp_path, model):
    collection = Collection.open(tmp_path / "kb", model)
    ids = list(DOCS)
    collection.add([DOCS[i] for i in ids], ids=ids, metadata=[{"team": TEAMS[i]} for i in ids])
    yield collection
    collection.close()


def ids(hits) -> list[str]:
    return [hit.id for hit in hits]


def test_keyword_finds_exact_codes_and_hybrid_keeps_them(kb):
    assert ids(kb.search("XJ-9000", k=1, mode="keyword")) == ["xj"]
    hybrid = kb.search("XJ-9000", k=3)
    assert hybrid[0].id == "xj"
    stages = hybrid[0].scores_by_stage
    assert stages["keyword_rank"] == 1 and "dense_rank" in stages and stages["hybrid_rank"] == 1
    assert ids(kb.search("my coffee maker has limescale", k=1, mode="dense")) == ["coffee"]


def test_keyword_index_follows_upserts_and_deletes(kb):
    assert kb.search("zeppelin", mode="keyword") == []
    kb.add(["A zeppelin tour leaves from the airfield on Fridays."], ids=["zeppelin"])
    assert ids(kb.search("zeppelin", mode="keyword")) == ["zeppelin"]  # findable at once
    kb.add(["Hot air balloon rides start at dawn."], ids=["zeppelin"])  # same id, new text
    assert kb.search("zeppelin", mode="keyword") == []
    assert ids(kb.search("balloon", mode="keyword")) == ["zeppelin"]
    kb.delete(["zeppelin", "printer"])
    assert kb.search("balloon", mode="keyword") == []
    assert kb.search("printer jams", mode="keyword") == []  # no stale hit after delete
    assert "printer" not in ids(kb.search("printer jams", k=6))


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_filters_apply_inside_every_stage(kb, mode):
    hits = kb.search("printer VPN copier", k=3, mode=mode, filter={"team": "it"})
    assert sorted(ids(hits)) == ["printer", "vpn", "xj"]
    facilities = kb.search("printer jams", k=2, mode=mode, filter={"team": "facilities"})
    assert all(TEAMS[i] == "facilities" for i in ids(facilities))
    if mode != "keyword":  # dense stages always fill k when k rows match
        assert len(facilities) == 2
    assert kb.search("printer", k=3, mode=mode, filter={"team": "nobody"}) == []


@pytest.mark.parametrize(
    "query",
    ['"printer', "printer*", "printer NEAR paper", "-printer", "printer OR", "(printer",
     "printer:jams", "printer' OR 1=1; DROP TABLE chunks; --", "printer AND NOT vpn"],
)  # fmt: skip
def test_query_syntax_characters_are_just_text(kb, query):
    for mode in ("keyword", "hybrid"):
        hits = kb.search(query, k=2, mode=mode)
        assert hits and hits[0].id == "printer", (mode, query)
    assert kb.count() == len(DOCS)


def test_stop_word_and_huge_queries(kb):
    assert kb.search("the of and to", mode="keyword") == []  # nothing to match on
    assert len(kb.search("the of and to", k=3)) == 3  # hybrid still has its dense half
    long_query = " ".join(["parking bays behind the building"] * 2000)  # 10,000 words
    for mode in ("keyword", "hybrid", "dense"):
        assert kb.search(long_query, k=1, mode=mode)[0].id == "parking"
    for bad in ("", "   "):
        with pytest.raises(InvalidInputError, match="empty"):
            kb.search(bad, mode="keyword")
    with pytest.raises(InvalidInputError, match="mode"):
        kb.search("printer", mode="fuzzy")


def test_diversity_drops_near_duplicates(tmp_path, model):
    with Collection.open(tmp_path / "dups", model) as kb:
        texts = [
            "Reset your password from the login page.",
            "Reset your password from the login page!",
            "Reset your password on the login page.",
            "Password rules: twelve characters, one digit.",
        ]
        kb.add(texts, ids=["a", "b", "c", "rules"])
        plain = ids(kb.search("how do I reset my password", k=2, mode="dense"))
        assert "rules" not in plain
        diverse = kb.search("how do I reset my password", k=2, mode="dense", diversity=0.7)
        assert "rules" in ids(diverse) and diverse[1].scores_by_stage["mmr_rank"] == 2


def test_diversity_after_a_rerank_keeps_the_reranked_head_first(tmp_path, model):
    """MMR weighs one scale of scores: the reranked head's, not those mixed with the first
    stage's cosines below it (which are larger, and came first)."""
    animals = ["cat", "dog", "bird", "fish", "horse", "cow", "sheep", "goat", "lion", "tiger",
               "bear", "wolf", "fox", "deer"]  # fmt: skip
    with Collection.open(tmp_path / "zoo", model) as kb:
        kb.add([f"the {a} is an animal, an animal {a}" for a in animals], ids=animals)
        options = {"k": 5, "mode": "dense", "rerank": "builtin", "rerank_depth": 3}
        plain = kb.search("animal cat", **options)
        diverse = kb.search("animal cat", diversity=0.01, **options)
        assert set(ids(diverse)[:3]) == set(ids(plain)[:3])
        assert all("rerank" in hit.scores_by_stage for hit in diverse[:3])
        assert len(diverse) == 5


# Keyword tables as embedstack wrote them before the document index (version 1).
VERSION_1 = """
CREATE TABLE postings (term TEXT NOT NULL, vid INTEGER NOT NULL, tf INTEGER NOT NULL,
    length INTEGER NOT NULL, PRIMARY KEY (term, vid)) WITHOUT ROWID;
CREATE TABLE keyword_docs (vid INTEGER PRIMARY KEY, length INTEGER NOT NULL);
INSERT INTO meta VALUES ('keyword_index', '1:english:english'), ('keyword_docs', '6');
"""


@pytest.mark.parametrize("before", ["no keyword index", "version 1 index"])
def test_older_collections_get_a_keyword_index(tmp_path, model, before):
    path = tmp_path / "old"
    with Collection.open(path, model) as kb:
        kb.add(list(DOCS.values()), ids=list(DOCS), metadata=[{"source": "faq.md"}] * len(DOCS))
    with sqlite3.connect(path / "embedstack.db") as db:
        for table in ("postings", "keyword_chunks", "keyword_documents", "document_postings"):
            db.execute(f"DROP TABLE {table}")
        db.execute("DELETE FROM meta WHERE key LIKE 'keyword%'")
        if before == "version 1 index":
            db.executescript(VERSION_1)
    with Collection.open(path, model) as kb:
        assert ids(kb.search("fuser copier", k=1, mode="keyword")) == ["xj"]
        kb.delete(["xj"])
        assert kb.search("fuser copier", k=1, mode="keyword") == []
