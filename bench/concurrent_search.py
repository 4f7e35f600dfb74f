"""Search throughput when threads share one Collection, as a web server's thread pool does.

    .venv/bin/python bench/concurrent_search.py --collection /tmp/latency-kb
        [--queries 300] [--threads 1 2 4 8] [--mode hybrid] [--writer]

Runs the SciFact test queries (k=10, embedding cache off) spread over N threads that share
one `Collection`, for each N, and prints queries/s and per-query p50/p95. With `--writer`, one
more thread adds and deletes batches of 20 rows the whole time (vectors given, so it costs
SQLite and FAISS work, not encoder time). Use a collection built by bench/hybrid_latency.py.
"""

from __future__ import annotations

import argparse
import platform
import threading
import time
from pathlib import Path

import numpy as np

from embedstack import Collection
from embedstack.evaluation import load_beir

DATA = Path("../shared/data")


def run(kb: Collection, queries: list[str], threads: int, mode: str) -> tuple[float, list[float]]:
    """(wall seconds, per-query seconds) for all queries spread over `threads` threads."""
    latencies: list[float] = []
    lock = threading.Lock()
    position = iter(range(len(queries)))

    def work() -> None:
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            started = time.perf_counter()
            kb.search(queries[index], k=10, mode=mode)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, latencies


def write_forever(kb: Collection, stop: threading.Event, written: list[int]) -> None:
    rng = np.random.default_rng(0)
    round_ = 0
    while not stop.is_set():
        vectors = rng.normal(size=(20, kb.config.dim)).astype(np.float32)
        ids = [f"bench-writer-{round_}-{n}" for n in range(20)]
        kb.add([f"writer row {round_} {n}" for n in range(20)], ids=ids, embeddings=vectors)
        kb.delete(ids)
        written.append(round_)
        round_ += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, default=Path("/tmp/latency-kb"))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--writer", action="store_true", help="one more thread writing")
    args = parser.parse_args()
    queries = list(load_beir(DATA / "scifact").queries.values())[: args.queries]
    rows = []
    with Collection.open(args.collection, create=False, cache_size=0) as kb:
        kb.search(queries[0], k=10)  # warm up: model load, index load
        stop, written = threading.Event(), []
        writer = threading.Thread(target=write_forever, args=(kb, stop, written))
        if args.writer:
            writer.start()
        for threads in args.threads:
            seconds, latencies = run(kb, queries, threads, args.mode)
            p50, p95 = np.percentile(np.array(latencies) * 1000, [50, 95])
            rows.append((threads, len(queries) / seconds, p50, p95))
        if args.writer:
            stop.set()
            writer.join()
        count = kb.count()
    print(
        f"{count:,} chunks · {len(queries)} queries · {args.mode} · k=10 · {platform.machine()}"
        + (f" · writer: {len(written)} add+delete rounds of 20 rows" if args.writer else "")
    )
    print("| threads | queries/s | p50 ms | p95 ms |\n|---|---|---|---|")
    for threads, qps, p50, p95 in rows:
        print(f"| {threads} | {qps:.1f} | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
