"""BERTopic on precomputed embeddings, for bench/analysis.py (issue 14). Runs in its own venv.

    /work/bench-venv/bin/python bench/bertopic_run.py --embeddings X.npy --docs docs.json
        --out result.json [--configs default,kmeans20] [--seed 42] [--n-words 10]
        [--stop-words english|none]

The bench venv: `python3 -m venv /work/bench-venv && /work/bench-venv/bin/pip install
torch==2.13.0 bertopic` (torch first: that exact version is the local CPU build; BERTopic pulls
umap-learn, hdbscan and sentence-transformers). No model is loaded: BERTopic gets
`embedding_model=None` and `fit_transform(docs, embeddings=X)`, so it clusters exactly the vectors
embedstack clusters.

`--docs` is a JSON list of strings, one per row of `--embeddings` (float32, n x dim).

Configurations (`--configs`, comma-separated):
- `default`: BERTopic's own pipeline, UMAP(n_neighbors=15, n_components=5, min_dist=0.0,
  metric="cosine") then HDBSCAN(min_cluster_size=10, metric="euclidean",
  cluster_selection_method="eom", prediction_data=True) -- BERTopic's defaults -- with
  `random_state=seed` added to UMAP so a run is repeatable.
- `kmeans20`: the same UMAP, then `KMeans(n_clusters=20, random_state=seed)` in place of HDBSCAN
  (BERTopic's documented way to fix the number of topics), so the cluster count matches the 20
  newsgroups.

Both use `CountVectorizer(stop_words="english")` for the c-TF-IDF topic words (BERTopic's
documented advice; its bare default keeps stop words, which only changes the words, never the
clusters). `--stop-words none` gives the bare default.

Writes JSON: {"bertopic": version, "umap": ..., "hdbscan": ..., "warmup_seconds": s,
"configs": {name: {"labels": [int per doc, -1 = outlier], "topics": {"<id>": [[word, score], ...]
top n-words by c-TF-IDF, "-1" included when there are outliers}, "seconds": fit_transform wall time,
"n_topics": clusters excluding -1, "outliers": docs labelled -1}}}.

`warmup_seconds`: one UMAP fit on 5,000 rows before the timed runs, so numba's just-in-time
compilation (tens of seconds) is not charged to the first configuration. It must be over 4,096
rows: below that UMAP finds neighbours exactly, and pynndescent's NN-descent would still be
compiled inside the first timed run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np


def umap_model(seed: int):
    from umap import UMAP

    # BERTopic's default UMAP (bertopic/_bertopic.py), plus a seed.
    return UMAP(
        n_neighbors=15,
        n_components=5,
        min_dist=0.0,
        metric="cosine",
        low_memory=False,
        random_state=seed,
    )


def cluster_model(name: str, seed: int):
    if name == "default":
        from hdbscan import HDBSCAN

        # BERTopic's default HDBSCAN.
        return HDBSCAN(
            min_cluster_size=10,
            metric="euclidean",
            cluster_selection_method="eom",
            prediction_data=True,
        )
    if name.startswith("kmeans"):
        from sklearn.cluster import KMeans

        k = int(name.removeprefix("kmeans") or 20)
        return KMeans(n_clusters=k, random_state=seed, n_init="auto")
    raise SystemExit(f"unknown configuration {name!r} (default, kmeans20, kmeansK)")


def run_config(
    name: str, docs: list[str], embeddings: np.ndarray, seed: int, n_words: int, stop_words: str
) -> dict:
    from bertopic import BERTopic
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(stop_words=None if stop_words == "none" else stop_words)
    model = BERTopic(
        embedding_model=None,
        umap_model=umap_model(seed),
        hdbscan_model=cluster_model(name, seed),
        vectorizer_model=vectorizer,
        top_n_words=n_words,
        calculate_probabilities=False,
        verbose=False,
    )
    started = time.perf_counter()
    labels, _ = model.fit_transform(docs, embeddings=embeddings)
    seconds = time.perf_counter() - started
    labels = [int(t) for t in labels]
    topics = {}
    for topic in sorted(set(labels)):
        words = model.get_topic(topic) or []
        topics[str(topic)] = [[str(w), float(s)] for w, s in words[:n_words]]
    return {
        "labels": labels,
        "topics": topics,
        "seconds": round(seconds, 3),
        "n_topics": len({t for t in labels if t != -1}),
        "outliers": sum(1 for t in labels if t == -1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--docs", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--configs", default="default,kmeans20")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n-words", type=int, default=10)
    parser.add_argument("--stop-words", default="english", choices=["english", "none"])
    args = parser.parse_args()

    embeddings = np.load(args.embeddings).astype(np.float32, copy=False)
    docs = json.loads(args.docs.read_text(encoding="utf-8"))
    if len(docs) != len(embeddings):
        raise SystemExit(f"{len(docs)} docs but {len(embeddings)} embeddings")

    started = time.perf_counter()
    warm = embeddings[np.random.RandomState(0).permutation(len(embeddings))[:5000]]
    umap_model(args.seed).fit(warm)
    warmup = time.perf_counter() - started

    result = {
        "bertopic": metadata.version("bertopic"),
        "umap": metadata.version("umap-learn"),
        "hdbscan": metadata.version("hdbscan"),
        "warmup_seconds": round(warmup, 3),
        "configs": {},
    }
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        print(f"bertopic_run: {name} on {len(docs)} docs ...", file=sys.stderr, flush=True)
        result["configs"][name] = run_config(
            name, docs, embeddings, args.seed, args.n_words, args.stop_words
        )
        print(
            f"bertopic_run: {name} done in {result['configs'][name]['seconds']:.1f}s, "
            f"{result['configs'][name]['n_topics']} topics",
            file=sys.stderr,
            flush=True,
        )
    args.out.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
