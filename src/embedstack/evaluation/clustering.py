"""Clustering evaluation as MTEB 1.12 scores it (AbsTaskClustering with ClusteringEvaluator), on a
JSONL file (optionally gzipped) with a text field and a label field.

Each set is clustered with `MiniBatchKMeans(n_clusters=<labels in the set>, batch_size=500,
n_init="auto")` right after numpy's global generator is seeded with 42 (MTEB's evaluator seeds
it, and k-means draws from it; here the same seeded `RandomState(42)` is passed instead, which
gives the same draws without touching global state), and scored by V-measure against the labels.

MTEB ships its sets ready-made; here they are drawn from the file: with `subset_size` M, set k
holds the rows of `RandomState(42).choice(n, M, replace=False)`, the k-th draw of one generator
(so sets differ and overlap), kept in file order. Without `subset_size` the one set is the whole
file.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from embedstack.errors import InvalidInputError
from embedstack.evaluation.classification import LabelledTexts, read_labelled
from embedstack.evaluation.report import EvalReport
from embedstack.models import DEFAULT_MODEL, EmbeddingModel, load_model

SEED = 42
KMEANS_BATCH = 500


def load_clustering(
    path: str | Path, text_field: str = "text", label_field: str = "label", split: str | None = None
) -> LabelledTexts:
    """Texts and labels from a JSONL (or CSV) file; with `split`, the rows of that split."""
    return read_labelled(path, text_field, label_field, split)


def draw_sets(n: int, sets: int, subset_size: int | None) -> list[np.ndarray]:
    """Row indices of each set, in file order (see the module docstring)."""
    if sets < 1:
        raise InvalidInputError(f"sets must be at least 1, not {sets}")
    if subset_size is None or subset_size >= n:
        if sets > 1:
            raise InvalidInputError(
                f"{sets} sets need a subset size below the {n} rows, or they would be identical"
            )
        return [np.arange(n)]
    if subset_size < 2:
        raise InvalidInputError(f"subset_size must be at least 2, not {subset_size}")
    rng = np.random.RandomState(SEED)
    return [np.sort(rng.choice(n, size=subset_size, replace=False)) for _ in range(sets)]


def v_measure(vectors: np.ndarray, labels: list[str]) -> float:
    """ClusteringEvaluator's score for one set."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import v_measure_score

    kmeans = MiniBatchKMeans(
        n_clusters=len(set(labels)),
        batch_size=KMEANS_BATCH,
        n_init="auto",
        random_state=np.random.RandomState(SEED),
    )
    kmeans.fit(vectors)
    return float(v_measure_score(labels, kmeans.labels_))


def evaluate_clustering(
    data: str | Path | LabelledTexts,
    model: str | EmbeddingModel = DEFAULT_MODEL,
    *,
    text_field: str = "text",
    label_field: str = "label",
    split: str | None = None,
    sets: int = 1,
    subset_size: int | None = None,
    batch_size: int = 32,
    show_progress: bool = False,
) -> EvalReport:
    """Mean V-measure over the sets (MTEB's main score), each set's value, and timings.

    Each row is embedded once, however many sets hold it.
    """
    dataset = (
        data
        if isinstance(data, LabelledTexts)
        else load_clustering(data, text_field, label_field, split)
    )
    chosen = draw_sets(len(dataset.texts), sets, subset_size)
    for rows in chosen:
        if len({dataset.labels[i] for i in rows}) < 2:
            raise InvalidInputError("a set holds one label only; clustering needs two or more")
    encoder = load_model(model) if isinstance(model, str) else model

    needed = np.unique(np.concatenate(chosen))
    started = time.perf_counter()
    vectors = encoder.encode(
        [dataset.texts[i] for i in needed], batch_size=batch_size, show_progress_bar=show_progress
    )
    embed_seconds = time.perf_counter() - started
    position = np.empty(len(dataset.texts), dtype=np.int64)
    position[needed] = np.arange(len(needed))

    started = time.perf_counter()
    measures = [
        v_measure(vectors[position[rows]], [dataset.labels[i] for i in rows]) for rows in chosen
    ]
    cluster_seconds = time.perf_counter() - started
    return EvalReport(
        {
            "v_measure": float(np.mean(measures)),
            "v_measure_std": float(np.std(measures)),
            "v_measures": measures,
            "main_score": float(np.mean(measures)),
            "sets": len(chosen),
            "set_size": len(chosen[0]),
            "n_labels": len(set(dataset.labels)),
            "n_embedded": len(needed),
            "embed_seconds": embed_seconds,
            "cluster_seconds": cluster_seconds,
            "texts_per_s": len(needed) / embed_seconds,
            "model": encoder.name,
            "backend": encoder.backend,
            "split": split,
        },
        task="Clustering",
        data=data,
    )
