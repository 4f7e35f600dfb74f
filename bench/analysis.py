"""Clustering and topic labels on 20 Newsgroups: embedstack against BERTopic and TF-IDF (issue 14).

    PYTHONPATH=src .venv/bin/python bench/analysis.py [--limit N] [--json [FILE]]
        [--model all-MiniLM-L6-v2] [--backend onnx-int8] [--skip-bertopic] [--skip-speed]
        [--only NAME,...] [--agglomerative-threshold T] [--cache-dir /work/benchdata/analysis]

Heavy: on a 2-core machine the full run takes about 6.5 minutes with the embeddings cached, plus
about 9 minutes to embed the 18,846 posts the first time; wrap it in `flock /tmp/heavy.lock ...`
where other heavy jobs share the machine.

Data: ../shared/data/20newsgroups/20news-bydate.jsonl.gz (relative to the repository root; env
NEWSGROUPS_JSONL overrides), all 18,846 posts of the "bydate" split (train and test together),
each post's `text` exactly as stored: headers (From, Subject, Organization, Lines...), quotes
and signatures included; MiniLM reads only the first 256 word pieces of each. Gold labels: the
20 newsgroups. `--limit N`: a seeded random sample of N posts (a quick run). Without the data
file the script says so and exits 0.

Embeddings: one pass of the chosen catalog model (default all-MiniLM-L6-v2 on embedstack's
default backend, int8 ONNX), cached as .npy under --cache-dir, keyed by model, backend, number of
posts and a hash of the texts. Every embedding-based method below clusters these same vectors.

Methods (one table row each):
- embedstack `Clusterer(method="kmeans", n_clusters=20)` (spherical k-means in FAISS), the
  same with `reduce_dims=5` (UMAP to 5-d first, as BERTopic does),
  `Clusterer(method="hdbscan")` (its defaults: UMAP to 5-d when umap-learn is installed, the
  smallest cluster 0.5% of the posts, then scikit-learn HDBSCAN, outliers -1),
  `Clusterer(method="agglomerative", n_clusters=20)` (Ward),
  and the same with `distance_threshold=T` (`--agglomerative-threshold`, default 8.0: Ward
  merge heights on these 18,846 vectors put 20 clusters at 9.75-9.94 and 25 at 8.38-8.48, so
  8.0 gives a few more than 25; chosen from the tree, not from the labels; Ward heights grow
  with the number of rows, so a --limit sample gets far fewer clusters); keywords from
  `describe_clusters(texts, labels, X, n_words=10)` (c-TF-IDF).
- BERTopic, in its own environment (`$BERTOPIC_PYTHON`, default /work/bench-venv/bin/python,
  running bench/bertopic_run.py; skipped with a note when missing), fed the same embeddings:
  `default` (UMAP + HDBSCAN, BERTopic's defaults plus a UMAP seed) and `+KMeans(20)` (the same
  UMAP, then scikit-learn KMeans with 20 clusters); keywords are BERTopic's own c-TF-IDF words
  (CountVectorizer with English stop words). See bertopic_run.py.
- TF-IDF + k-means: `TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=2)` on the
  same texts, then `sklearn.cluster.KMeans(n_clusters=20, random_state=42)`; keywords are the 10
  highest-weighted terms of each centroid (the classic way to read a TF-IDF k-means cluster).

Columns:
- `clusters`: clusters found, outliers (-1) not counted. `outliers`: share of posts labelled -1.
- `V`: `sklearn.metrics.v_measure_score(newsgroup, cluster)` over ALL posts, outliers counted
  as one more cluster (what a user of the labels gets). `V clustered`: the same over the posts
  that are not outliers only (flatters methods that leave many posts out; equals V without
  outliers). `hom` / `compl`: homogeneity and completeness over all posts.
- `label hit@5` (own keywords) and `hit@5 common` (every method's clusters described by one
  shared c-TF-IDF, so only the clustering differs), defined as:
    For a clustering, take every cluster c except the outliers. Its majority newsgroup g(c) is
    the gold label most frequent among c's posts (ties: alphabetically first). Its reference
    words R(g) are (a) the tokens of g's name split on "." and "-", lower-cased, without the
    generic "comp", "sys", "misc", "talk", "soc", "rec", "sci", "alt" (comp.sys.ibm.pc.hardware
    gives ibm, pc, hardware), together with (b) g's 10 most distinctive terms: the top 10
    c-TF-IDF words when the 20 gold newsgroups are the classes (this script's c-TF-IDF, below,
    over all posts loaded), among words found in at most 10% of all posts (so that header
    words -- subject, lines, organization, edu, com -- and everyday ones -- people, think,
    know -- name no newsgroup; god, windows, space, car stay, at 5-7%). c is a hit when one of
    its first 5 keywords, lower-cased, or one of the whitespace-separated words of a
    multi-word keyword, equals a word of R(g(c)).
    The score is hits / clusters (every cluster counts once, whatever its size). The JSON also
    has `hit5_docs`: the share of clustered posts that sit in hit clusters.
  This script's c-TF-IDF (for the gold terms and the `common` column): BERTopic's formula
  (ClassTfidfTransformer defaults): per-class word counts from
  `CountVectorizer(stop_words="english", min_df=2)` with embedstack's word pattern (a letter
  first, two characters or more: no numbers), each class L1-normalised, times
  log(1 + A / f(w)) with A the mean words per class and f(w) the word's count over all classes;
  outliers (-1) form a class of their own (they count in f(w)) but are never scored.
- `fit s`: seconds to cluster (for BERTopic: its whole fit_transform, UMAP, clustering and
  c-TF-IDF words, in a fresh process after a numba warm-up; for TF-IDF: vectorising + k-means).
  `words s`: seconds for the keywords (embedstack's describe_clusters; BERTopic: inside fit s).

Speed (skip with --skip-speed):
- k-means on 100,000 x 384 vectors, k=100, `Clusterer(method="kmeans", n_clusters=100)`,
  beside scikit-learn `KMeans(n_clusters=100, n_init=1)` for reference. The 100,000 rows are
  the 20NG embeddings followed by perturbed copies (each copy: its source row plus Gaussian
  noise, sigma 0.01 per dimension, then re-normalised; cosine to the source about 0.98): real
  directions, not real posts.
- projection of 20,000 of those rows (the 18,846 real ones and 1,154 copies) to 2-D with PCA and
  UMAP through `embedstack.analysis.project`; when that is not there yet, scikit-learn PCA and
  umap-learn directly (marked in the table; umap-learn from the BERTopic venv when the main one
  lacks it). UMAP is timed after a 5,000-row warm-up, so numba's compilation is left out (the
  warm-up's seconds are shown too).

Output: a header (CPU, SIMD flags, date, versions, embedstack commit), the tables, the total
wall time. `--json` prints one JSON document instead of the tables; `--json FILE` prints the
tables and writes the JSON to FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine

REPO = Path(__file__).resolve().parents[1]
DATA = Path(
    os.environ.get(
        "NEWSGROUPS_JSONL",
        REPO / ".." / "shared" / "data" / "20newsgroups" / "20news-bydate.jsonl.gz",
    )
)
BERTOPIC_PYTHON = os.environ.get("BERTOPIC_PYTHON", "/work/bench-venv/bin/python")
BERTOPIC_SCRIPT = Path(__file__).resolve().parent / "bertopic_run.py"
GENERIC_NAME_PARTS = {"comp", "sys", "misc", "talk", "soc", "rec", "sci", "alt"}
K = 20
SEED = 42
# Words, as embedstack's topics.py cuts them: a letter first, at least two characters.
TOKEN_PATTERN = r"(?u)\b[^\W\d_][\w'-]*\w\b"
WARMUP_ROWS = 5000  # UMAP switches from exact neighbours to pynndescent at 4,096 rows
MAX_DOC_SHARE = 0.10  # a newsgroup's distinctive terms: words in at most 10% of all posts

# ---- machine, data, embeddings ------------------------------------------------------------------


def versions() -> dict:
    found = {}
    for package in ("numpy", "scikit-learn", "faiss-cpu", "umap-learn", "onnxruntime"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    import embedstack

    source = Path(embedstack.__file__).resolve().parent
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--", "."],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        if dirty:
            commit += " + uncommitted changes"
    found["embedstack"] = f"{source.parent} @ {commit}" if commit else str(source.parent)
    return found


def load_posts() -> list[dict]:
    with gzip.open(DATA, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def sample(count: int, limit: int | None) -> np.ndarray:
    """Row positions kept: all, or a seeded random `limit` of them (in file order)."""
    if not limit or limit >= count:
        return np.arange(count)
    return np.sort(np.random.RandomState(SEED).permutation(count)[:limit])


def cache_path(texts: list[str], model: Any, cache_dir: Path) -> Path:
    digest = hashlib.sha1("\x00".join(texts).encode("utf-8")).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model.name}-{model.backend}")
    return cache_dir / f"20ng-{safe}-n{len(texts)}-{digest}.npy"


def embed(
    all_texts: list[str], keep: np.ndarray, model_name: str, backend: str | None, cache_dir: Path
) -> tuple:
    """(vectors of the kept rows, model name, backend, seconds or None when cached).

    A cache of all posts serves a --limit run too; otherwise only the kept rows are embedded.
    """
    from embedstack import load_model

    model = load_model(model_name, backend)
    texts = [all_texts[i] for i in keep]
    for source, rows in ((all_texts, keep), (texts, np.arange(len(texts)))):
        path = cache_path(source, model, cache_dir)
        if path.exists():
            vectors = np.load(path, mmap_mode="r")
            if vectors.shape == (len(source), model.dim):
                return np.ascontiguousarray(vectors[rows]), model.name, model.backend, None
    path = cache_path(texts, model, cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    vectors = np.asarray(model.encode(texts, batch_size=32, show_progress_bar=True), np.float32)
    seconds = time.perf_counter() - started
    np.save(path.with_suffix(".tmp.npy"), vectors)
    path.with_suffix(".tmp.npy").replace(path)
    return vectors, model.name, model.backend, seconds


# ---- c-TF-IDF and label quality -----------------------------------------------------------------


class CountCache:
    """One CountVectorizer pass over the texts, shared by every c-TF-IDF this script computes."""

    def __init__(self, texts: Sequence[str]):
        from sklearn.feature_extraction.text import CountVectorizer

        self.vectorizer = CountVectorizer(
            stop_words="english", min_df=2, token_pattern=TOKEN_PATTERN
        )
        self.counts = self.vectorizer.fit_transform(texts).tocsr()
        self.words = self.vectorizer.get_feature_names_out()
        self.doc_share = np.bincount(self.counts.indices, minlength=len(self.words)) / len(texts)

    def top_words(
        self, labels: Sequence[Any], n: int = 10, max_doc_share: float | None = None
    ) -> dict[Any, list[str]]:
        """BERTopic's c-TF-IDF (ClassTfidfTransformer defaults): top `n` words per label.

        `max_doc_share`: only words found in at most that share of all posts compete.
        """
        from scipy.sparse import csr_matrix
        from sklearn.preprocessing import normalize

        labels = np.asarray(labels)
        classes, rows = np.unique(labels, return_inverse=True)
        membership = csr_matrix(
            (np.ones(len(labels)), (rows, np.arange(len(labels)))),
            shape=(len(classes), len(labels)),
        )
        per_class = (membership @ self.counts).toarray().astype(np.float64)
        frequency = per_class.sum(axis=0)
        average = per_class.sum() / len(classes)
        idf = np.log(1.0 + average / np.maximum(frequency, 1e-12))
        weights = normalize(per_class, norm="l1") * idf
        if max_doc_share is not None:
            weights[:, self.doc_share > max_doc_share] = 0.0
        found = {}
        for row, label in enumerate(classes):
            top = np.argsort(-weights[row], kind="stable")[:n]
            key = label.item() if hasattr(label, "item") else label
            found[key] = [str(self.words[i]) for i in top if weights[row, i] > 0]
        return found


def reference_words(gold: Sequence[str], counts: CountCache) -> dict[str, set[str]]:
    """R(g) for each newsgroup g: its name's tokens (generic parts dropped) + its top-10 terms."""
    distinctive = counts.top_words(gold, 10, max_doc_share=MAX_DOC_SHARE)
    found = {}
    for group in sorted(set(gold)):
        name = {t.lower() for t in re.split(r"[.\-]", group) if t} - GENERIC_NAME_PARTS
        found[group] = name | {w.lower() for w in distinctive[group]}
    return found


def majority(gold: np.ndarray, labels: np.ndarray) -> dict[int, str]:
    found = {}
    for cluster in sorted(set(labels.tolist()) - {-1}):
        tally = Counter(gold[labels == cluster].tolist())
        best = max(tally.values())
        found[cluster] = min(g for g, n in tally.items() if n == best)
    return found


def label_hits(
    gold: np.ndarray,
    labels: np.ndarray,
    keywords: dict[int, list[str]],
    reference: dict[str, set[str]],
) -> dict:
    """hit@5 as the module docstring defines it, per cluster and per clustered post."""
    owners = majority(gold, labels)
    if not owners:
        return {"hit5": None, "hit5_docs": None, "examples": []}
    hits, hit_docs, clustered, examples = 0, 0, 0, []
    for cluster, group in owners.items():
        words = keywords.get(cluster, [])[:5]
        tokens = {part.lower() for word in words for part in [word, *word.split()]}
        hit = bool(tokens & reference[group])
        size = int((labels == cluster).sum())
        hits += hit
        hit_docs += size if hit else 0
        clustered += size
        if len(examples) < 25:
            examples.append({"cluster": cluster, "size": size, "majority": group,
                             "top5": words, "hit": hit})  # fmt: skip
    return {
        "hit5": hits / len(owners),
        "hit5_docs": hit_docs / clustered,
        "examples": examples,
    }


# ---- the methods --------------------------------------------------------------------------------


def run_embedstack(method: str, vectors: np.ndarray, texts: list[str], **params: Any) -> dict:
    from embedstack.analysis import Clusterer, describe_clusters

    warmup = None
    if params.get("reduce_dims", 5 if method == "hdbscan" else None):
        warmup = umap_warmup(vectors)
    started = time.perf_counter()
    clusterer = Clusterer(method=method, random_state=SEED, **params).fit(vectors)
    fit_seconds = time.perf_counter() - started
    labels = np.asarray(clusterer.labels_)
    started = time.perf_counter()
    topics = describe_clusters(texts, labels, vectors, n_words=10, n_examples=3)
    words_seconds = time.perf_counter() - started
    return {
        "labels": labels,
        "keywords": {t.cluster: [w for w, _ in t.keywords] for t in topics},
        "fit_seconds": fit_seconds,
        "words_seconds": words_seconds,
        "warmup_seconds": warmup,
    }


def umap_warmup(vectors: np.ndarray) -> float | None:
    """A UMAP fit on WARMUP_ROWS rows, so numba's compilation is not charged to the timed run.

    Over 4,096 rows UMAP finds neighbours with pynndescent (below, exactly): a smaller warm-up
    leaves NN-descent's compilation (about 40 s here) to the first real run.
    """
    try:
        from umap import UMAP
    except ImportError:
        return None
    rows = vectors[np.random.RandomState(0).permutation(len(vectors))[:WARMUP_ROWS]]
    started = time.perf_counter()
    UMAP(n_components=5, min_dist=0.0, metric="cosine", random_state=SEED, n_jobs=1).fit(rows)
    return time.perf_counter() - started


def run_tfidf_kmeans(texts: list[str]) -> dict:
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    started = time.perf_counter()
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=2)
    matrix = vectorizer.fit_transform(texts)
    kmeans = KMeans(n_clusters=min(K, len(texts)), random_state=SEED, n_init="auto").fit(matrix)
    fit_seconds = time.perf_counter() - started
    words = vectorizer.get_feature_names_out()
    keywords = {
        c: [str(words[i]) for i in np.argsort(-centre, kind="stable")[:10]]
        for c, centre in enumerate(kmeans.cluster_centers_)
    }
    return {
        "labels": np.asarray(kmeans.labels_, dtype=np.int64),
        "keywords": keywords,
        "fit_seconds": fit_seconds,
        "words_seconds": 0.0,
        "note": f"{matrix.shape[1]:,} terms",
    }


def run_bertopic(vectors: np.ndarray, texts: list[str]) -> dict[str, dict] | str:
    """{config: result} from bertopic_run.py in its own venv, or a note saying why not."""
    if not Path(BERTOPIC_PYTHON).exists():
        return f"skipped: {BERTOPIC_PYTHON} not found (set BERTOPIC_PYTHON)"
    with tempfile.TemporaryDirectory(prefix="bench-bertopic-") as tmp:
        folder = Path(tmp)
        np.save(folder / "x.npy", vectors)
        (folder / "docs.json").write_text(json.dumps(texts), encoding="utf-8")
        command = [
            BERTOPIC_PYTHON, str(BERTOPIC_SCRIPT), "--embeddings", str(folder / "x.npy"),
            "--docs", str(folder / "docs.json"), "--out", str(folder / "out.json"),
            "--configs", f"default,kmeans{K}", "--seed", str(SEED),
        ]  # fmt: skip
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        if done.returncode != 0:
            return f"failed: bertopic_run.py exited {done.returncode}"
        result = json.loads((folder / "out.json").read_text(encoding="utf-8"))
    found: dict[str, dict] = {}
    for name, config in result["configs"].items():
        found[name] = {
            "labels": np.asarray(config["labels"], dtype=np.int64),
            "keywords": {int(t): [w for w, _ in words] for t, words in config["topics"].items()},
            "fit_seconds": config["seconds"],
            "words_seconds": None,
            "versions": {k: result[k] for k in ("bertopic", "umap", "hdbscan")},
            "warmup_seconds": result["warmup_seconds"],
        }
    return found


def score(
    name: str,
    run: dict,
    gold: np.ndarray,
    counts: CountCache,
    reference: dict[str, set[str]],
) -> dict:
    from sklearn.metrics import homogeneity_completeness_v_measure, v_measure_score

    labels = np.asarray(run["labels"], dtype=np.int64)
    outliers = labels == -1
    hom, compl, v = homogeneity_completeness_v_measure(gold, labels)
    kept = ~outliers
    v_clustered = float(v_measure_score(gold[kept], labels[kept])) if kept.any() else None
    common = counts.top_words(labels, 10)
    own = label_hits(gold, labels, run["keywords"], reference)
    shared = label_hits(gold, labels, {int(c): w for c, w in common.items()}, reference)
    return {
        "method": name,
        "clusters": len(set(labels[kept].tolist())),
        "outlier_share": float(outliers.mean()),
        "v_measure": float(v),
        "v_measure_clustered": v_clustered,
        "homogeneity": float(hom),
        "completeness": float(compl),
        "hit5": own["hit5"],
        "hit5_docs": own["hit5_docs"],
        "hit5_common": shared["hit5"],
        "hit5_common_docs": shared["hit5_docs"],
        "fit_seconds": run["fit_seconds"],
        "words_seconds": run["words_seconds"],
        "note": run.get("note", ""),
        "examples": own["examples"],
    }


# ---- speed --------------------------------------------------------------------------------------


def hundred_thousand(vectors: np.ndarray, rows: int = 100_000, sigma: float = 0.01) -> np.ndarray:
    rng = np.random.RandomState(SEED)
    source = np.arange(rows) % len(vectors)
    out = vectors[source].astype(np.float32, copy=True)
    copies = np.arange(rows) >= len(vectors)
    out[copies] += rng.normal(0.0, sigma, size=(int(copies.sum()), vectors.shape[1])).astype(
        np.float32
    )
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


UMAP_SNIPPET = """
import sys, time, json, numpy as np
from umap import UMAP
x = np.load(sys.argv[1])
t = time.perf_counter()
UMAP(n_components=2, random_state=42, n_jobs=1).fit_transform(x[:5000])
warm = time.perf_counter() - t
t = time.perf_counter()
UMAP(n_components=2, random_state=42, n_jobs=1).fit_transform(x)
print(json.dumps({"warmup": warm, "seconds": time.perf_counter() - t}))
"""


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def speed(vectors: np.ndarray, log: Callable[[str], None]) -> list[dict]:
    from sklearn.cluster import KMeans

    from embedstack.analysis import Clusterer

    rows: list[dict] = []
    big = hundred_thousand(vectors)
    origin = f"{len(vectors):,} 20NG embeddings + {len(big) - len(vectors):,} perturbed copies"
    log("speed: k-means 100k x k=100 (embedstack)")
    seconds = timed(lambda: Clusterer(method="kmeans", n_clusters=100, random_state=SEED).fit(big))
    rows.append({"task": f"k-means, {len(big):,} x {big.shape[1]}, k=100",
                 "how": "embedstack Clusterer(method='kmeans') (FAISS, spherical)",
                 "seconds": seconds, "data": origin})  # fmt: skip
    log("speed: k-means 100k x k=100 (scikit-learn)")
    seconds = timed(lambda: KMeans(n_clusters=100, n_init=1, random_state=SEED).fit(big))
    rows.append({"task": f"k-means, {len(big):,} x {big.shape[1]}, k=100",
                 "how": "scikit-learn KMeans(n_init=1) (reference)",
                 "seconds": seconds, "data": origin})  # fmt: skip

    small = big[:20_000]
    task = f"projection to 2-D, {len(small):,} x {small.shape[1]}"
    try:
        from embedstack.analysis import project
    except (ImportError, AttributeError):
        project = None
    if project is not None:
        for method in ("pca", "umap"):
            log(f"speed: project {method} (embedstack)")
            warm = None
            if method == "umap":
                warm = timed(lambda: project(small[:WARMUP_ROWS], method="umap", n_components=2))
            seconds = timed(lambda m=method: project(small, method=m, n_components=2))
            rows.append({"task": task, "how": f"embedstack project(method='{method}')",
                         "seconds": seconds, "warmup_seconds": warm,
                         "data": origin})  # fmt: skip
        return rows

    from sklearn.decomposition import PCA

    log("speed: PCA (scikit-learn; embedstack.analysis.project not there yet)")
    seconds = timed(lambda: PCA(n_components=2, random_state=SEED).fit_transform(small))
    rows.append({"task": task, "how": "scikit-learn PCA (embedstack project not there yet)",
                 "seconds": seconds, "data": origin})  # fmt: skip
    log("speed: UMAP (umap-learn; embedstack.analysis.project not there yet)")
    try:
        from umap import UMAP

        warm = timed(lambda: UMAP(n_components=2, random_state=SEED, n_jobs=1).fit_transform(
            small[:WARMUP_ROWS]))  # fmt: skip
        seconds = timed(lambda: UMAP(n_components=2, random_state=SEED, n_jobs=1).fit_transform(
            small))  # fmt: skip
        where = "umap-learn, main venv"
    except ImportError:
        if not Path(BERTOPIC_PYTHON).exists():
            rows.append({"task": task, "how": "UMAP: skipped, umap-learn not installed",
                         "seconds": None, "data": origin})  # fmt: skip
            return rows
        with tempfile.TemporaryDirectory(prefix="bench-umap-") as tmp:
            np.save(Path(tmp) / "x.npy", small)
            done = subprocess.run([BERTOPIC_PYTHON, "-c", UMAP_SNIPPET, str(Path(tmp) / "x.npy")],
                                  capture_output=True, text=True, check=True)  # fmt: skip
        timing = json.loads(done.stdout.strip().splitlines()[-1])
        warm, seconds = timing["warmup"], timing["seconds"]
        where = "umap-learn in the BERTopic venv"
    rows.append({"task": task, "how": f"UMAP ({where}; embedstack project not there yet)",
                 "seconds": seconds, "warmup_seconds": warm, "data": origin})  # fmt: skip
    return rows


# ---- output -------------------------------------------------------------------------------------


def fmt(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "–"
    return format(value, spec)


def print_tables(result: dict) -> None:
    m, v = result["machine"], result["versions"]
    print(f"\n## 20 Newsgroups clustering · {result['posts']:,} posts · {m['date']}")
    print(f"CPU: {m['cpu']} · {m['cores']} cores · SIMD: {' '.join(m['simd']) or 'none'}")
    print(f"Python {m['python']} · " + " · ".join(
        f"{k} {val}" for k, val in v.items() if k != "embedstack" and val))  # fmt: skip
    print(f"embedstack: {v['embedstack']}")
    if result.get("bertopic_versions"):
        print(
            "BERTopic venv: "
            + " · ".join(f"{k} {val}" for k, val in result["bertopic_versions"].items())
        )
    emb = result["embedding"]
    took = "read from cache" if emb["seconds"] is None else f"{emb['seconds']:.0f} s"
    print(f"Embeddings: {emb['model']} ({emb['backend']}), {emb['dim']}-d, {took}")
    print()
    print("| method | clusters | outliers | V | V clustered | hom | compl | label hit@5 | "
          "hit@5 common | fit s | words s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in result["methods"]:
        words = "incl." if row["words_seconds"] is None else fmt(row["words_seconds"], ".1f")
        print(f"| {row['method']} | {row['clusters']} | {row['outlier_share']:.1%} | "
              f"{row['v_measure']:.3f} | {fmt(row['v_measure_clustered'])} | "
              f"{row['homogeneity']:.3f} | {row['completeness']:.3f} | "
              f"{fmt(row['hit5'], '.0%')} | {fmt(row['hit5_common'], '.0%')} | "
              f"{row['fit_seconds']:.1f} | {words} |")  # fmt: skip
    for note in result["notes"]:
        print(f"\n{note}")
    if result.get("speed"):
        print("\n| speed | how | seconds | warm-up s |")
        print("|---|---|---|---|")
        for row in result["speed"]:
            print(f"| {row['task']} | {row['how']} | {fmt(row['seconds'], '.1f')} | "
                  f"{fmt(row.get('warmup_seconds'), '.1f')} |")  # fmt: skip
        print(f"\nSpeed data: {result['speed'][0]['data']} (sigma 0.01, re-normalised).")
    print(f"\nTotal wall time: {result['wall_seconds']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of N posts")
    parser.add_argument("--json", nargs="?", const="-", default=None,
                        help="JSON to stdout (no tables), or to FILE")  # fmt: skip
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--backend", default=None, help="default: the model's default backend")
    parser.add_argument("--cache-dir", type=Path, default=Path("/work/benchdata/analysis"))
    parser.add_argument("--skip-bertopic", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument(
        "--only", default=None, help="comma-separated: kmeans,hdbscan,agglomerative,bertopic,tfidf"
    )
    parser.add_argument(
        "--agglomerative-threshold",
        type=float,
        default=8.0,
        help="also run agglomerative with this distance_threshold (0: do not)",
    )
    parser.add_argument("--embed-only", action="store_true", help="fill the cache and stop")
    args = parser.parse_args()
    to_stdout = args.json == "-"
    only = set(args.only.split(",")) if args.only else None

    def wanted(name: str) -> bool:
        return only is None or name in only

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    if not DATA.exists():
        print(f"{DATA} not found: nothing to benchmark")
        return
    wall = time.perf_counter()
    posts = load_posts()
    keep = sample(len(posts), args.limit)
    texts = [posts[i]["text"] for i in keep]
    gold = np.asarray([posts[i]["label"] for i in keep])
    log(f"{len(texts):,} posts; embedding (or reading the cache)")
    vectors, model_name, backend, embed_seconds = embed(
        [p["text"] for p in posts], keep, args.model, args.backend, args.cache_dir
    )
    if args.embed_only:
        log(f"embeddings ready: {vectors.shape}, {embed_seconds or 0:.0f} s")
        return

    result: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(),
        "posts": len(texts),
        "embedding": {
            "model": model_name,
            "backend": backend,
            "dim": int(vectors.shape[1]),
            "seconds": embed_seconds,
        },  # fmt: skip
        "methods": [],
        "notes": [],
    }
    log("c-TF-IDF counts and gold reference words")
    counts = CountCache(texts)
    reference = reference_words(gold.tolist(), counts)
    result["reference_words"] = {g: sorted(w) for g, w in reference.items()}

    runs: list[tuple[str, Callable[[], dict]]] = []
    if wanted("kmeans"):
        runs.append((f"embedstack k-means (k={K})",
                     lambda: run_embedstack("kmeans", vectors, texts, n_clusters=K)))  # fmt: skip
    if wanted("kmeans"):
        runs.append((f"embedstack k-means (k={K}, reduce_dims=5: UMAP first)",
                     lambda: run_embedstack("kmeans", vectors, texts, n_clusters=K,
                                            reduce_dims=5)))  # fmt: skip
    if wanted("hdbscan"):
        runs.append(("embedstack HDBSCAN (defaults)",
                     lambda: run_embedstack("hdbscan", vectors, texts)))  # fmt: skip
    if wanted("agglomerative"):
        runs.append((f"embedstack agglomerative (Ward, k={K})",
                     lambda: run_embedstack("agglomerative", vectors, texts,
                                            n_clusters=K)))  # fmt: skip
        if args.agglomerative_threshold:
            t = args.agglomerative_threshold
            runs.append((f"embedstack agglomerative (Ward, threshold {t:g})",
                         lambda: run_embedstack("agglomerative", vectors, texts, n_clusters=None,
                                                distance_threshold=t)))  # fmt: skip
    for name, call in runs:
        log(name)
        try:
            run = call()
            result["methods"].append(score(name, run, gold, counts, reference))
            if run.get("warmup_seconds") is not None:
                result["notes"].append(
                    f"{name} fit s: after a {run['warmup_seconds']:.0f} s UMAP (numba) warm-up "
                    "in this process (not counted)."
                )
        except Exception as exc:  # noqa: BLE001 - one failing method must not lose the others
            result["notes"].append(f"{name}: failed: {type(exc).__name__}: {exc}")
            log(f"{name} failed: {exc!r}")

    if wanted("bertopic") and not args.skip_bertopic:
        log("BERTopic (subprocess)")
        found = run_bertopic(vectors, texts)
        if isinstance(found, str):
            result["notes"].append(f"BERTopic: {found}")
        else:
            titles = {"default": "BERTopic default (UMAP + HDBSCAN)",
                      f"kmeans{K}": f"BERTopic + KMeans({K}) (UMAP + k-means)"}  # fmt: skip
            for config, run in found.items():
                result["bertopic_versions"] = run["versions"]
                result["methods"].append(
                    score(titles.get(config, config), run, gold, counts, reference)
                )
            first = next(iter(found.values()))
            result["notes"].append(
                f"BERTopic fit s: fit_transform in a fresh process after a "
                f"{first['warmup_seconds']:.0f} s numba warm-up (not counted)."
            )
    if wanted("tfidf"):
        log("TF-IDF + k-means")
        result["methods"].append(
            score(f"TF-IDF + k-means (k={K})", run_tfidf_kmeans(texts), gold, counts, reference)
        )

    if not args.skip_speed:
        result["speed"] = speed(vectors, log)
    result["wall_seconds"] = time.perf_counter() - wall

    if to_stdout:
        print(json.dumps(result, indent=1, default=str))
        return
    print_tables(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
