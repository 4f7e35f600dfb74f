"""Retrieval metrics computed exactly as MTEB does (trec_eval via pytrec_eval, MTEB's MRR)."""

from __future__ import annotations

import numpy as np
import pytrec_eval

Run = dict[str, dict[str, float]]  # query id -> {doc id: score}
Qrels = dict[str, dict[str, int]]


def retrieval_metrics(qrels: Qrels, run: Run, ndcg_at: int = 10, recall_at=(10, 100)) -> dict:
    """nDCG@k and recall@k from trec_eval; MRR@10 over all judged queries, as MTEB averages it."""
    measures = {f"ndcg_cut.{ndcg_at}", "recall." + ",".join(str(k) for k in recall_at)}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    result = {
        f"ndcg@{ndcg_at}": float(np.mean([s[f"ndcg_cut_{ndcg_at}"] for s in per_query.values()]))
    }
    for k in recall_at:
        result[f"recall@{k}"] = float(np.mean([s[f"recall_{k}"] for s in per_query.values()]))
    result["mrr@10"] = mrr_at_k(qrels, run, 10)
    return result


def mrr_at_k(qrels: Qrels, run: Run, k: int) -> float:
    """Mean reciprocal rank of the first relevant doc in the top k (0 when none is there)."""
    total = 0.0
    for query_id, scores in run.items():
        relevant = {doc for doc, rel in qrels.get(query_id, {}).items() if rel > 0}
        ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)[:k]
        for rank, (doc_id, _) in enumerate(ranked, start=1):
            if doc_id in relevant:
                total += 1.0 / rank
                break
    return total / len(qrels) if qrels else 0.0
