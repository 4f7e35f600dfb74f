"""End-to-end retrieval evaluation on a real (small) slice of SciFact."""

from __future__ import annotations

import json
import random

from embedstack.evaluation import evaluate_retrieval
from tests.conftest import SHARED_DATA, needs_shared_data


def scifact_slice(folder, n_queries: int = 40, n_distractors: int = 250):
    """A BEIR folder with some test queries, their relevant docs and random other docs."""
    source = SHARED_DATA / "scifact"
    qrels: dict[str, dict[str, int]] = {}
    for line in (source / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query, doc, score = line.split("\t")
        qrels.setdefault(query, {})[doc] = int(score)
    chosen = dict(list(qrels.items())[:n_queries])
    relevant = {doc for docs in chosen.values() for doc in docs}
    corpus = [json.loads(line) for line in (source / "corpus.jsonl").open()]
    others = [d for d in corpus if d["_id"] not in relevant]
    keep = [d for d in corpus if d["_id"] in relevant] + random.Random(0).sample(
        others, n_distractors
    )
    queries = [json.loads(line) for line in (source / "queries.jsonl").open()]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in keep))
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps(q) + "\n" for q in queries if q["_id"] in chosen)
    )
    rows = [f"{q}\t{d}\t{s}" for q, docs in chosen.items() for d, s in docs.items()]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows))
    return folder


@needs_shared_data
def test_evaluate_retrieval_on_a_scifact_slice(tmp_path, model):
    result = evaluate_retrieval(scifact_slice(tmp_path / "slice"), model)
    assert result["n_queries"] == 40
    assert result["n_docs"] >= 290
    # A small corpus is easier than the full one (0.645), and far above chance (~0.01).
    assert 0.6 < result["ndcg@10"] <= 1.0
    assert result["recall@10"] <= result["recall@100"] <= 1.0
    assert 0.5 < result["mrr@10"] <= 1.0
    assert result["docs_per_s"] > 0 and result["queries_per_s"] > 0
