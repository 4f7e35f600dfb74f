"""Time add and search on the full SciFact corpus (5,183 docs, 300 test queries).

    .venv/bin/python bench/scifact_add_search.py [--data ../shared/data/scifact] [--limit N]

Encodes the corpus once (the model's share of `add`), then stores it in a flat and an HNSW
collection (the store's share), and times single-query search, with and without a metadata filter.
Prints one table; paste it into docs/benchmarks.md with the date, machine and command.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from embedstack import Collection, load_model
from embedstack.evaluation import load_beir


def percentiles(seconds: list[float]) -> str:
    p50, p95 = np.percentile(np.array(seconds) * 1000, [50, 95])
    return f"p50 {p50:.2f} ms · p95 {p95:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N documents")
    args = parser.parse_args()

    data = load_beir(args.data)
    ids = list(data.corpus)[: args.limit or None]
    texts = [data.corpus[i] for i in ids]
    years = [{"year": 2000 + n % 25} for n in range(len(ids))]  # ~4% match {"year": 2010}
    queries = list(data.queries.values())
    rows: list[tuple[str, str]] = []

    started = time.perf_counter()
    model = load_model()
    rows.append(("load model", f"{time.perf_counter() - started:.2f} s"))

    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=32, show_progress_bar=True)
    seconds = time.perf_counter() - started
    rows.append(
        ("encode corpus", f"{len(ids)} docs in {seconds:.1f} s = {len(ids) / seconds:.1f} docs/s")
    )

    started = time.perf_counter()
    query_vectors = model.encode(queries)
    seconds = time.perf_counter() - started
    rows.append(("encode queries (batch)", f"{len(queries) / seconds:.1f} queries/s"))

    started = time.perf_counter()
    for query in queries[:50]:
        model.encode(query)
    rows.append(("encode one query", f"{(time.perf_counter() - started) / 50 * 1000:.1f} ms"))

    with tempfile.TemporaryDirectory() as tmp:
        exact_top10 = None
        for index in ("flat", "hnsw"):
            folder = Path(tmp) / index
            with Collection.open(folder, model, index=index) as kb:
                started = time.perf_counter()
                kb.add(texts, ids=ids, metadata=years, embeddings=vectors)
                seconds = time.perf_counter() - started
                rows.append((f"{index}: store {len(ids)} vectors (one add)", f"{seconds:.2f} s"))

                started = time.perf_counter()
                kb.add(texts[:100], ids=[f"extra{i}" for i in range(100)], embeddings=vectors[:100])
                rows.append((f"{index}: add 100 more", f"{time.perf_counter() - started:.3f} s"))
                kb.delete([f"extra{i}" for i in range(100)])

            started = time.perf_counter()
            kb = Collection.open(folder, model)
            kb.count()
            rows.append((f"{index}: reopen", f"{(time.perf_counter() - started) * 1000:.1f} ms"))

            for label, where in (("search", None), ("search + filter", {"year": 2010})):
                latencies, top10 = [], []
                for vector in query_vectors:
                    started = time.perf_counter()
                    hits = kb.search(vector, k=10, filter=where)
                    latencies.append(time.perf_counter() - started)
                    top10.append({h.id for h in hits})
                rows.append((f"{index}: {label} (k=10, vector given)", percentiles(latencies)))
                if where is None:
                    if exact_top10 is None:
                        exact_top10 = top10
                    else:
                        recall = np.mean(
                            [len(a & b) / 10 for a, b in zip(top10, exact_top10, strict=True)]
                        )
                        rows.append((f"{index}: recall@10 vs exact", f"{recall:.4f}"))
            kb.close()

    print(
        f"\nSciFact add/search · {platform.processor() or platform.machine()} · "
        f"{len(ids)} docs, {len(queries)} queries\n"
    )
    width = max(len(name) for name, _ in rows)
    print(f"| {'step'.ljust(width)} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
