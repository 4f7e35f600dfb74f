"""The local store at 100k x 384: exact search over the memory-mapped vector file ("flat")
against the "auto" index (IVF + 8-bit scalar codes, exact float re-rank), and what a close
writes after a small add.

Vectors: synthetic "real-like" unit vectors (2,000 topic centres plus noise, like sentence
embeddings; uniform random vectors have no neighbours worth finding). Each kind is measured in
a fresh process: resident memory after open + searches (VmRSS, including the mapped file pages
it touched), single-thread queries/s over dense search (k=10), recall@10 against brute force.

    python bench/local_store_scale.py --rows 100000 --queries 300
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_line  # noqa: E402

DIM = 384


def vectors(rows: int, seed: int, centres: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, DIM)).astype(np.float32)
    out = np.empty((rows, DIM), dtype=np.float32)
    for start in range(0, rows, 50_000):
        n = min(50_000, rows - start)
        block = middle[rng.integers(0, centres, n)] + 0.7 * rng.standard_normal((n, DIM))
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build(folder: Path, index: str, rows: int) -> dict:
    from embedstack import Collection

    data = vectors(rows, 1)
    started = time.perf_counter()
    with Collection.open(folder, index=index) as kb:
        for start in range(0, rows, 10_000):
            block = data[start : start + 10_000]
            names = range(start, start + len(block))
            kb.add([f"r{i}" for i in names], ids=[f"v{i}" for i in names], embeddings=block)
    return {"build_s": time.perf_counter() - started}


def measure(folder: Path, rows: int, queries: int) -> dict:
    from embedstack import Collection

    data = vectors(rows, 1)
    probe = vectors(queries, 2)
    truth = np.argsort(-(probe @ data.T), axis=1)[:, :10]
    del data
    base = rss_mb()
    started = time.perf_counter()
    kb = Collection.open(folder)
    store = kb._store
    opened = time.perf_counter() - started
    store.dense(probe[:5], 10)  # warm up
    started = time.perf_counter()
    found = [store.dense(q[None, :], 10)[0] for q in probe]
    seconds = time.perf_counter() - started
    hits = sum(
        len({id_ for id_, _ in got} & {f"v{i}" for i in want})
        for got, want in zip(found, truth, strict=True)
    )
    result = {
        "open_s": opened,
        "qps": queries / seconds,
        "recall10": hits / (10 * queries),
        "rss_mb": rss_mb() - base,
        "index": [s.index.__class__.__name__ for s in store._index.segments][:1],
    }
    fresh = vectors(100, 3)  # a small add, then what a close writes
    kb.add([f"n{i}" for i in range(100)], ids=[f"n{i}" for i in range(100)], embeddings=fresh)
    result["close_bytes"] = store.flush()
    kb.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--kinds", default="flat;auto", help="index kinds, separated by ;")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, what = Path(args.child[0]), args.child[1]
        result = (
            measure(folder, args.rows, args.queries)
            if what == "measure"
            else build(folder, what, args.rows)
        )
        print(json.dumps(result))
        return
    print(cpu_line())
    print(f"{args.rows:,} x {DIM} real-like vectors, {args.queries} queries one at a time, k=10\n")
    print("| index | build s | open s | QPS | recall@10 | RSS MB | disk MB | a close after +100 |")
    print("|---|---|---|---|---|---|---|---|")
    root = Path(tempfile.mkdtemp(prefix="local-scale-"))
    try:
        for kind in args.kinds.split(";"):
            folder = root / kind.replace(",", "_")
            run = [sys.executable, __file__, "--rows", str(args.rows),
                   "--queries", str(args.queries), "--child", str(folder)]  # fmt: skip
            built = json.loads(subprocess.check_output([*run, kind]).splitlines()[-1])
            disk = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
            got = json.loads(subprocess.check_output([*run, "measure"]).splitlines()[-1])
            print(
                f"| {kind} | {built['build_s']:.1f} | {got['open_s']:.2f} | {got['qps']:.0f} | "
                f"{got['recall10']:.3f} | {got['rss_mb']:.0f} | {disk:.0f} | "
                f"{got['close_bytes']:,} bytes |"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
