"""Retrieval evaluation on a BEIR folder, following MTEB's protocol, through a real collection."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from embedstack.collection import Collection
from embedstack.evaluation.beir import BeirDataset, load_beir
from embedstack.evaluation.metrics import retrieval_metrics
from embedstack.evaluation.report import EvalReport
from embedstack.models import DEFAULT_MODEL, EmbeddingModel, load_model
from embedstack.progress import progress_bar
from embedstack.search.rerank import Reranker
from embedstack.types import Hit

ENCODE_CHUNK = 4096  # documents encoded and stored per step: bounds memory on large corpora


def evaluate_retrieval(
    data: str | Path | BeirDataset,
    model: str | EmbeddingModel = DEFAULT_MODEL,
    *,
    split: str = "test",
    batch_size: int = 32,
    top_k: int = 100,
    mode: str = "hybrid",
    rerank: str | Reranker | None = None,
    show_progress: bool = False,
) -> EvalReport:
    """Embed the corpus into a temporary collection, search every judged query, score the run.

    `mode` and `rerank` choose the search pipeline (as in `Collection.search`). Returns
    nDCG@10, recall@10, recall@100, MRR@10 and throughput (docs/s, queries/s).
    """
    dataset = data if isinstance(data, BeirDataset) else load_beir(data, split)
    encoder = load_model(model) if isinstance(model, str) else model
    doc_ids = list(dataset.corpus)
    with tempfile.TemporaryDirectory(prefix="embedstack-eval-") as tmp:
        collection = Collection.open(Path(tmp) / "collection", encoder, cache_size=0)
        started = time.perf_counter()
        with progress_bar(
            len(doc_ids), "Embedding corpus", enabled=show_progress, unit="docs"
        ) as advance:
            for start in range(0, len(doc_ids), ENCODE_CHUNK):
                ids = doc_ids[start : start + ENCODE_CHUNK]
                texts = [dataset.corpus[i] for i in ids]
                # Empty documents are embedded as "" (as MTEB does) but stored with a placeholder
                # text, since a collection refuses empty text.
                vectors = encoder.encode_document(texts, batch_size=batch_size)
                collection.add([t or "(empty)" for t in texts], ids=ids, embeddings=vectors)
                advance(len(ids))
        docs_seconds = time.perf_counter() - started

        query_ids = list(dataset.queries)
        started = time.perf_counter()
        hits = collection.search_batch(
            [dataset.queries[q] for q in query_ids], k=top_k, mode=mode, rerank=rerank,
            batch_size=batch_size, show_progress=show_progress,
        )  # fmt: skip
        queries_seconds = time.perf_counter() - started
        collection.close()

    run = ranked_run(query_ids, hits)
    return EvalReport(
        {
            **retrieval_metrics(dataset.qrels, run),
            "docs_per_s": len(doc_ids) / docs_seconds,
            "queries_per_s": len(query_ids) / queries_seconds,
            "n_docs": len(doc_ids),
            "n_queries": len(query_ids),
            "model": encoder.name,
            "backend": encoder.backend,
            "split": split,
            "mode": mode,
            "rerank": rerank if isinstance(rerank, str | None) else rerank.name,
        },
        task="Retrieval",
        data=data,
    )


def ranked_run(query_ids: list[str], hits: list[list[Hit]]) -> dict[str, dict[str, float]]:
    """A trec run scored by rank, not by score: trec_eval sorts by score, and after a rerank
    the hits below the reranked head carry first-stage scores on another scale."""
    return {
        q: {hit.id: float(len(row) - rank) for rank, hit in enumerate(row)}
        for q, row in zip(query_ids, hits, strict=True)
    }
