"""Vectors for bench/scale.py: real all-MiniLM-L6-v2 embeddings (SciFact, 20 Newsgroups) encoded
once and cached outside the repo, padded to N with generated vectors of the same statistics.

Why generated padding: 2 shared CPUs encode ~15 SciFact passages per CPU-second, so a million real
chunks would take most of a day. The padding is a Gaussian with the real vectors' mean and full
covariance, L2-normalised like the model's output, so its spread (and so how hard the ANN search
is) matches the real ones; real vectors are kept at the front, and queries come from held-out real
texts only.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("EMBEDSTACK_DATA", Path(__file__).resolve().parents[2] / "shared/data"))
CACHE = Path(os.environ.get("EMBEDSTACK_BENCH_CACHE", Path.home() / ".cache/embedstack-bench"))
NEWS_CHARS = 200  # the first ~50 tokens of each post: 2 shared CPUs encode all 18,846 in minutes
HELD_OUT = 1000  # real passages kept out of the base set and used as queries
SEED = 18


def _news_texts() -> list[str]:
    """Subject + body (headers dropped, first NEWS_CHARS characters) of all 18,846 posts."""
    texts = []
    with gzip.open(DATA / "20newsgroups/20news-bydate.jsonl.gz", "rt") as f:
        for line in f:
            post = json.loads(line)
            _, _, body = post["text"].partition("\n\n")
            texts.append(" ".join(f"{post['subject']} {body}".split())[:NEWS_CHARS])
    return texts


def _scifact(name: str) -> list[str]:
    rows = [json.loads(line) for line in (DATA / "scifact" / name).open()]
    if name == "queries.jsonl":
        return [row["text"] for row in rows]
    return [(row["title"] + " " + row["text"]).strip() for row in rows]


def real_vectors() -> dict[str, np.ndarray]:
    """{"scifact_corpus", "scifact_queries", "news"} -> float32 (n, 384), cached as .npy."""
    sources = {
        "scifact_queries": lambda: _scifact("queries.jsonl"),
        "scifact_corpus": lambda: _scifact("corpus.jsonl"),
        "news": _news_texts,
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, texts in sources.items():
        path = CACHE / f"minilm-{name}.npy"
        if not path.exists():
            from embedstack import load_model

            items, start = texts(), time.perf_counter()
            vecs = load_model().encode(items, batch_size=32).astype(np.float32)
            print(f"encoded {len(items)} {name} in {time.perf_counter() - start:.0f} s", flush=True)
            np.save(path.with_suffix(".tmp.npy"), vecs)
            os.replace(path.with_suffix(".tmp.npy"), path)
        out[name] = np.load(path)
    return out


def generated(real: np.ndarray, n: int, seed: int = SEED) -> np.ndarray:
    """n vectors from N(mean, cov) of `real`, L2-normalised: the real vectors' statistics."""
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0, dtype=np.float64)
    cov = np.cov(real, rowvar=False)
    chol = np.linalg.cholesky(cov + 1e-9 * np.eye(cov.shape[0]))
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        z = rng.standard_normal((min(100_000, n - start), real.shape[1]))
        block = (mean + z @ chol.T).astype(np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def dataset(n: int, held_out: int = HELD_OUT) -> tuple[Path, Path, dict]:
    """(base.npy of n x 384, queries.npy, facts): written once per n into the cache."""
    base_path, query_path = CACHE / f"base-{n}.npy", CACHE / f"queries-{n}.npy"
    facts_path = CACHE / f"facts-{n}.json"
    if held_out != HELD_OUT:
        base_path, query_path, facts_path = (
            p.with_stem(f"{p.stem}-h{held_out}") for p in (base_path, query_path, facts_path)
        )
    if base_path.exists() and query_path.exists() and facts_path.exists():
        return base_path, query_path, json.loads(facts_path.read_text())
    real = real_vectors()
    passages = np.concatenate([real["scifact_corpus"], real["news"]])
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(passages))
    held, kept = passages[order[:held_out]], passages[order[held_out:]]
    kept = kept[:n]
    base = np.concatenate([kept, generated(kept, n - len(kept))]) if n > len(kept) else kept
    queries = np.concatenate([real["scifact_queries"], held]).astype(np.float32)
    np.save(base_path, np.ascontiguousarray(base, dtype=np.float32))
    np.save(query_path, queries)
    facts = {
        "n": n,
        "real": int(len(kept)),
        "generated": int(n - len(kept)),
        "queries": f"{len(real['scifact_queries'])} SciFact queries + {held_out} held-out passages",
    }
    facts_path.write_text(json.dumps(facts))
    return base_path, query_path, facts


if __name__ == "__main__":
    for key, value in real_vectors().items():
        print(key, value.shape)
