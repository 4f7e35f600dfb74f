"""Keyword scores mix in each chunk's whole document; the document index stays exact."""

from __future__ import annotations

import sqlite3

import pytest

from embedstack import Collection
from embedstack.store.keyword_index import document_key

# Two "filings": the chunk about gross margin never names its company; its document does.
CHUNKS = {
    "amzn-0": ("amazon.pdf", "Amazon.com reports results. Amazon Web Services and Amazon stores."),
    "amzn-1": ("amazon.pdf", "Gross margin rose to 47 percent in the quarter."),
    "aapl-0": ("apple.pdf", "Apple reports results for iPhone, Mac and services."),
    "aapl-1": ("apple.pdf", "Gross margin was 43 percent; the gross margin outlook is steady."),
}
QUERY = "Amazon gross margin"


def add(kb: Collection, ids: list[str]) -> None:
    kb.add(
        [CHUNKS[i][1] for i in ids],
        ids=ids,
        metadata=[{"source": CHUNKS[i][0], "chunk": n} for n, i in enumerate(ids)],
    )


def order(kb: Collection, query: str = QUERY) -> list[str]:
    return [hit.id for hit in kb.search(query, k=4, mode="keyword")]


def before(ranked: list[str], first: str, second: str) -> bool:
    return ranked.index(first) < ranked.index(second)


def reopen_with_document_weight(kb: Collection, weight: float) -> Collection:
    folder = kb.folder
    kb.close()
    config = folder / "collection.toml"
    lines = [ln for ln in config.read_text().splitlines() if "bm25_document_weight" not in ln]
    config.write_text("\n".join([*lines, f"bm25_document_weight = {weight}", ""]))
    return Collection.open(folder)


def test_a_chunk_is_found_by_what_its_document_says(tmp_path, model):
    kb = Collection.open(tmp_path / "kb", model)
    add(kb, list(CHUNKS))
    assert before(order(kb), "amzn-1", "aapl-1")
    kb = reopen_with_document_weight(kb, 0)  # chunk-only BM25, as before documents counted
    assert before(order(kb), "aapl-1", "amzn-1")
    kb.close()


def test_document_evidence_follows_deletes_and_upserts(tmp_path, model):
    with Collection.open(tmp_path / "kb", model) as kb:
        add(kb, list(CHUNKS))
        kb.delete(["amzn-0"])  # the only chunk naming Amazon
        assert before(order(kb), "aapl-1", "amzn-1")
        add(kb, ["amzn-0"])
        assert before(order(kb), "amzn-1", "aapl-1")
        kb.add(
            ["Quarterly results of a retailer."],
            ids=["amzn-0"],
            metadata=[{"source": "amazon.pdf"}],
        )
        assert before(order(kb), "aapl-1", "amzn-1")


def test_rows_without_a_source_rank_by_plain_bm25(tmp_path, model):
    with Collection.open(tmp_path / "kb", model) as kb:
        kb.add([text for _, text in CHUNKS.values()], ids=list(CHUNKS))
        mixed = kb.search(QUERY, k=4, mode="keyword")
    kb = reopen_with_document_weight(Collection.open(tmp_path / "kb", model), 0)
    plain = kb.search(QUERY, k=4, mode="keyword")
    kb.close()
    assert [h.id for h in mixed] == [h.id for h in plain]
    assert [h.score for h in mixed] == pytest.approx([h.score for h in plain])


def test_document_index_equals_a_rebuild_after_many_writes(tmp_path, model):
    path = tmp_path / "kb"
    with Collection.open(path, model) as kb:
        add(kb, list(CHUNKS))
        kb.add(
            ["Amazon gross margin guidance."], ids=["amzn-1"], metadata=[{"source": "amazon.pdf"}]
        )
        kb.delete(["aapl-0", "nothing-here"])
        kb.add(["Row text."], ids=["row"], metadata=[{"source": "t.jsonl", "row": 3}])
        kb.delete(["aapl-1"])  # apple.pdf is gone entirely
        incremental = snapshot(path)
    with sqlite3.connect(path / "embedstack.db") as db:
        db.execute("DELETE FROM meta WHERE key = 'keyword_index'")  # forces a rebuild on open
    Collection.open(path, model).close()
    assert incremental == snapshot(path)
    assert {key for key, *_ in incremental["documents"]} == {"amazon.pdf", "t.jsonl#row3"}


def snapshot(path) -> dict[str, list]:
    """The document-level index by document key (ids differ between builds) and the stats."""
    with sqlite3.connect(path / "embedstack.db") as db:
        return {
            "documents": sorted(db.execute("SELECT key, length, chunks FROM keyword_documents")),
            "postings": sorted(
                db.execute(
                    "SELECT k.key, d.term, d.tf FROM document_postings AS d "
                    "JOIN keyword_documents AS k USING (document)"
                )
            ),
            "chunk_postings": sorted(
                db.execute(
                    "SELECT k.key, p.term, SUM(p.tf) FROM postings AS p "
                    "JOIN keyword_documents AS k USING (document) GROUP BY k.key, p.term"
                )
            ),
            "stats": sorted(
                db.execute(
                    "SELECT * FROM meta WHERE key LIKE 'keyword%' AND key != 'keyword_index'"
                )
            ),
        }


def test_document_key_is_the_file_or_its_row():
    assert document_key({"source": "a/b.pdf", "page": 3}) == "a/b.pdf"
    assert document_key({"source": "t.jsonl", "row": 0}) == "t.jsonl#row0"
    assert document_key({"team": "it"}) is None
