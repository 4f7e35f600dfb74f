"""SciFact retrieval quality and speed for each search pipeline, on one collection.

    .venv/bin/python bench/scifact_hybrid.py [--data ../shared/data/scifact]
        [--collection /tmp/scifact-kb] [--pipelines dense keyword hybrid hybrid+builtin]

The corpus is embedded once into --collection (reused when it already holds it); every
pipeline then searches the 300 test queries (k=100) and is scored with trec_eval, as
`embedstack eval retrieval --mode M --rerank R` does. Prints one table.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from embedstack import Collection
from embedstack.evaluation import load_beir
from embedstack.evaluation.metrics import retrieval_metrics
from embedstack.evaluation.retrieval import ranked_run

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def pipeline_options(name: str) -> dict:
    """'hybrid+builtin' -> {"mode": "hybrid", "rerank": "builtin"}."""
    mode, _, rerank = name.partition("+")
    return {"mode": mode, "rerank": rerank or None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--collection", type=Path, default=Path("/tmp/scifact-kb"))
    parser.add_argument(
        "--pipelines", nargs="+", default=["dense", "keyword", "hybrid", "hybrid+builtin"]
    )
    args = parser.parse_args()
    data = load_beir(args.data)
    kb = Collection.open(args.collection)
    if kb.count() != len(data.corpus):
        ids = list(data.corpus)
        kb.add([data.corpus[i] or "(empty)" for i in ids], ids=ids, show_progress=True)
    query_ids = list(data.queries)
    texts = [data.queries[q] for q in query_ids]
    rows = []
    for name in args.pipelines:
        started = time.perf_counter()
        hits = kb.search_batch(texts, k=100, **pipeline_options(name))
        seconds = time.perf_counter() - started
        run = ranked_run(query_ids, hits)
        metrics = retrieval_metrics(data.qrels, run)
        rows.append((name, *(metrics[m] for m in METRICS), 1000 * seconds / len(texts)))
        print(f"{name}: nDCG@10 {metrics['ndcg@10']:.5f}", flush=True)
    kb.close()
    print(f"\nSciFact test ({len(texts)} queries, {len(data.corpus)} docs), {platform.machine()}")
    print("| pipeline | " + " | ".join(METRICS) + " | ms/query |")
    print("|---" * (len(METRICS) + 2) + "|")
    for name, *values, ms in rows:
        print(f"| {name} | " + " | ".join(f"{v:.5f}" for v in values) + f" | {ms:.1f} |")


if __name__ == "__main__":
    main()
