"""Query latency of dense, keyword and hybrid search on 40k+ chunks (20 Newsgroups + SciFact).

    .venv/bin/python bench/hybrid_latency.py [--collection /tmp/latency-kb] [--queries 300]
        [--newsgroups 6000] [--chunk-tokens 64] [--index hnsw|flat]

Builds the collection once with `Collection.ingest` (the first --newsgroups posts of the
20 Newsgroups train split and the whole SciFact corpus, as JSONL, in 64-token chunks: 40k+
chunks for a few minutes of encoding), reusing it when --collection already holds it. Then runs
SciFact test queries one at a time (query embedding included, cache off) and prints p50/p95.
HNSW by default: an exact (flat) scan of 100k+ 384-d vectors reads 160 MB per query.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from embedstack import Collection
from embedstack.evaluation import load_beir

DATA = Path("../shared/data")


def build(kb: Collection, chunk_tokens: int, newsgroups_docs: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        newsgroups = Path(scratch) / "20newsgroups-train.jsonl"
        with gzip.open(DATA / "20newsgroups/20news-bydate.jsonl.gz", "rt") as source:
            rows = [json.loads(line) for line in source]
        train = [row for row in rows if row["split"] == "train" and row["text"].strip()]
        with open(newsgroups, "w") as out:
            for row in train[:newsgroups_docs]:
                out.write(json.dumps({"text": row["text"], "label": row["label"]}) + "\n")
        scifact = Path(scratch) / "scifact-corpus.jsonl"
        with open(DATA / "scifact/corpus.jsonl") as source, open(scifact, "w") as out:
            for line in source:
                doc = json.loads(line)
                text = f"{doc['title']} {doc['text']}".strip()
                out.write(json.dumps({"text": text, "doc_id": doc["_id"]}) + "\n")
        report = kb.ingest([newsgroups, scifact], chunk_tokens=chunk_tokens, show_progress=True)
        print(f"ingested {report.chunks_added:,} chunks in {report.seconds:.0f} s")


def percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.array(seconds) * 1000, [50, 95])
    return float(p50), float(p95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, default=Path("/tmp/latency-kb"))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--chunk-tokens", type=int, default=64)
    parser.add_argument("--newsgroups", type=int, default=6000)
    parser.add_argument("--index", default="hnsw", help="index for a new collection")
    args = parser.parse_args()
    kb = Collection.open(args.collection, cache_size=0, index=args.index)
    if kb.count() == 0:
        build(kb, args.chunk_tokens, args.newsgroups)
    queries = list(load_beir(DATA / "scifact").queries.values())[: args.queries]
    kb.search(queries[0], k=10)  # warm up: model load, index load
    rows = []
    for mode in ("dense", "keyword", "hybrid"):
        seconds = []
        for query in queries:
            started = time.perf_counter()
            kb.search(query, k=10, mode=mode)
            seconds.append(time.perf_counter() - started)
        rows.append((mode, *percentiles(seconds)))
    print(f"{kb.count():,} chunks · {len(queries)} queries · k=10 · {platform.machine()}")
    print("| mode | p50 ms | p95 ms |\n|---|---|---|")
    for mode, p50, p95 in rows:
        print(f"| {mode} | {p50:.1f} | {p95:.1f} |")
    kb.close()


if __name__ == "__main__":
    main()
