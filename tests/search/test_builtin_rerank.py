"""The built-in reranker: late interaction over the collection model's token vectors."""

from __future__ import annotations

from embedstack import Collection
from embedstack.search.rerank import LateInteractionReranker
from tests.search.test_hybrid import DOCS


def test_maxsim_by_hand(model):
    reranker = LateInteractionReranker(model)
    texts = ["The printer jams.", "Lunch is at noon."]
    scores = reranker.score("printer jam", texts)
    query_tokens, query_mask = model.token_embeddings(["printer jam"])
    doc_tokens, doc_mask = model.token_embeddings(texts)  # same batch: int8 scales match
    q = query_tokens[0][query_mask[0]]
    d = doc_tokens[0][doc_mask[0]]
    expected = (q @ d.T).max(axis=1).mean()  # each query token's best match, averaged
    assert abs(scores[0] - expected) < 1e-5
    assert scores[0] > scores[1]


def test_builtin_rerank_fuses_with_both_retrievers(tmp_path, model):
    with Collection.open(tmp_path / "kb", model) as kb:
        kb.add(list(DOCS.values()), ids=list(DOCS))
        hits = kb.search("copier fuser replacement part", k=3, rerank="builtin")
        assert hits[0].id == "xj"
        for hit in hits:
            stages = hit.scores_by_stage
            assert {"hybrid_rank", "rerank", "rerank_rank"} <= set(stages)
        assert [h.scores_by_stage["rerank_rank"] for h in hits] == [1, 2, 3]
