"""Embedding cache: encode the same texts twice through a collection's cached encoder.

    .venv/bin/python bench/embed_cache.py [--n 1000]

The first pass runs the model and fills the cache; the second is lookups only. Prints both
times and their ratio (target: second pass at least 20x faster).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from embedstack import load_model
from embedstack.models.cache import CachedEncoder, EmbeddingCache

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    with (DATA / "scifact" / "corpus.jsonl").open(encoding="utf-8") as lines:
        docs = [json.loads(line) for _, line in zip(range(args.n), lines, strict=False)]
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in docs]

    model = load_model()
    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedEncoder(model, EmbeddingCache(Path(tmp) / "cache.db"))
        started = time.perf_counter()
        first = cached.encode(texts)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        second = cached.encode(texts)
        warm = time.perf_counter() - started
        assert np.array_equal(first, second)

    print(f"\n{len(texts)} SciFact passages · {model.name} ({model.backend})\n")
    print("| pass | seconds | texts/s |")
    print("|---|---|---|")
    print(f"| first (model + cache write) | {cold:.2f} | {len(texts) / cold:.1f} |")
    print(f"| second (cache lookups) | {warm:.3f} | {len(texts) / warm:.0f} |")
    print(f"\nsecond pass {cold / warm:.0f}x faster")


if __name__ == "__main__":
    main()
