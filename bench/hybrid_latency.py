"""Query latency of dense, keyword and hybrid search on 100k chunks (20 Newsgroups + SciFact).

    .venv/bin/python bench/hybrid_latency.py [--collection /tmp/latency-kb] [--queries 300]
        [--newsgroups 6000] [--chunk-tokens 64] [--index auto] [--keyword-memory both]

Builds the collection once with `Collection.ingest` (the first --newsgroups posts of the
20 Newsgroups train split and the whole SciFact corpus, as JSONL, in 64-token chunks: 106k
chunks for ~15 minutes of encoding), reusing it when --collection already holds it. Then runs
SciFact test queries one at a time (query embedding included, cache off) and prints
p50/p95/p99, with two rows that split the dense time: the query embedding alone, and dense search
given the query's vector. The collection's index is "auto" (the default; IVF + PQ codes past
50,000 chunks); an existing collection keeps the index it was made with.

`--keyword-memory both` (the default) times keyword and hybrid search twice, query by query
interleaved: BM25 scored in SQLite (`off`, the SQL path) and over the postings mirrored in
memory (`on`), and prints the mirror's load time and the process's resident memory around it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from embedstack import Collection
from embedstack.evaluation import load_beir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_line  # noqa: E402

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


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    p50, p95, p99 = np.percentile(np.array(seconds) * 1000, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def rss_mb() -> float:
    """Resident memory now (Linux), else the peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _search(
    kb: Collection, memory: Any, queries: list[str], mode: str, variant: str, n: int
) -> None:
    """Query n in `mode`, BM25 scored in SQL (variant "off") or over the mirror ("on")."""
    memory.mode = {"on": "eager", "off": "off"}[variant]
    kb.search(queries[n], k=10, mode=mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, default=Path("/tmp/latency-kb"))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--chunk-tokens", type=int, default=64)
    parser.add_argument("--newsgroups", type=int, default=6000)
    parser.add_argument("--index", default="auto", help="index for a new collection")
    parser.add_argument("--keyword-memory", choices=("both", "on", "off"), default="both")
    args = parser.parse_args()
    kb = Collection.open(args.collection, cache_size=0)
    if kb.count() == 0:
        kb.close()
        kb = Collection.open(args.collection, cache_size=0, index=args.index)
        build(kb, args.chunk_tokens, args.newsgroups)
    queries = list(load_beir(DATA / "scifact").queries.values())[: args.queries]
    # The bench reaches into the store to switch the mirror per query (before/after in one run).
    memory = kb._store.keywords.memory  # type: ignore[attr-defined]
    memory.mode = "off"
    kb.search(queries[0], k=10)  # warm up: model load, index load
    before = rss_mb()
    variants = {"both": ("off", "on"), "on": ("on",), "off": ("off",)}[args.keyword_memory]
    load_line = ""
    if "on" in variants:
        memory.mode = "eager"
        started = time.perf_counter()
        kb.search(queries[0], k=10, mode="keyword")  # loads the mirror
        mirror = memory._mirror
        load_line = (
            f"keyword mirror: {mirror.postings:,} postings loaded in "
            f"{time.perf_counter() - started:.2f} s; RSS {before:.0f} MB -> {rss_mb():.0f} MB"
        )
    labels = {"off": "SQL", "on": "memory"}
    vectors = kb.model.encode_query(queries)
    timed: dict[tuple[str, str], Callable[[int], object]] = {
        ("query embedding", "-"): lambda n: kb.model.encode_query([queries[n]]),
        ("dense, vector given", "-"): lambda n: kb.search(vectors[n], k=10),
        ("dense", "-"): lambda n: kb.search(queries[n], k=10, mode="dense"),
    }
    for mode in ("keyword", "hybrid"):
        for variant in variants:
            timed[mode, labels[variant]] = partial(_search, kb, memory, queries, mode, variant)
    seconds: dict[tuple[str, str], list[float]] = {row: [] for row in timed}
    for n in range(len(queries)):
        rows = list(timed) if n % 2 == 0 else list(timed)[::-1]  # none always goes first
        for row in rows:
            started = time.perf_counter()
            timed[row](n)
            seconds[row].append(time.perf_counter() - started)
    print(
        f"{kb.count():,} chunks · index {kb.config.index!r} · {len(queries)} queries · k=10 · "
        f"{platform.machine()}"
    )
    print(cpu_line())
    if load_line:
        print(load_line)
    print("| mode | variant (BM25 over) | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|")
    for (mode, label), times in seconds.items():
        p50, p95, p99 = percentiles(times)
        print(f"| {mode} | {label} | {p50:.1f} | {p95:.1f} | {p99:.1f} |")
    kb.close()


if __name__ == "__main__":
    main()
