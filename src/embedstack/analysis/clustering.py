"""`Clusterer`: groups of similar vectors, as a scikit-learn estimator.

Three methods, each where it is strongest:
- `kmeans`: spherical k-means in FAISS (cosine geometry, trained on a sample of at most
  256 points per centroid), the one that scales to millions of vectors;
- `agglomerative`: scikit-learn's hierarchical clustering (Ward on unit vectors by default),
  with a fixed number of clusters or a distance threshold; memory grows with n², so it is
  refused past `MAX_AGGLOMERATIVE` rows;
- `hdbscan`: scikit-learn's HDBSCAN, which finds the number of clusters itself and marks
  outliers as -1; its smallest cluster defaults to 0.5% of the items (at least 10).

`reduce_dims=N` first reduces the vectors to N dimensions with UMAP (cosine), as BERTopic
does: density estimates in 384 dimensions are poor, and k-means finds topics better in the
reduced space (20 Newsgroups: V-measure 0.597 → 0.642, docs/benchmarks.md) at the price of
the UMAP fit (~20 s for 20,000 vectors). The default, "auto", reduces to 5 for HDBSCAN only.
Without umap-learn, nothing is reduced (a warning says so).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from embedstack.analysis.vectors import as_unit_rows
from embedstack.errors import InvalidInputError

log = logging.getLogger(__name__)

METHODS = ("kmeans", "agglomerative", "hdbscan")
MAX_AGGLOMERATIVE = 50_000  # its distance matrix: n² / 2 floats (10 GB at 50,000)
OUTLIER = -1


class Clusterer(ClusterMixin, TransformerMixin, BaseEstimator):
    """Cluster vectors by cosine similarity; `labels_` per row (-1: an HDBSCAN outlier).

    `transform` gives cosine distances to the cluster centres (the unit mean of each
    cluster's members) and `predict` the nearest centre, for any method.
    """

    def __init__(
        self,
        method: str = "kmeans",
        n_clusters: int | None = 8,
        *,
        distance_threshold: float | None = None,
        linkage: str = "ward",
        min_cluster_size: int | None = None,
        reduce_dims: int | str | None = "auto",
        n_init: int = 3,
        max_iter: int = 25,
        random_state: int | None = 42,
    ):
        self.method = method
        self.n_clusters = n_clusters
        self.distance_threshold = distance_threshold
        self.linkage = linkage
        self.min_cluster_size = min_cluster_size
        self.reduce_dims = reduce_dims
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> Clusterer:
        vectors = as_unit_rows(X, min_rows=2)
        if self.method not in METHODS:
            raise InvalidInputError(f"method must be one of {METHODS}, got {self.method!r}")
        points = self._reduced(vectors)
        if self.method == "kmeans":
            labels = self._kmeans(points, spherical=points is vectors)
        elif self.method == "agglomerative":
            labels = self._agglomerative(points)
        else:
            labels = self._hdbscan(points)
        self.labels_ = labels.astype(np.int64)
        self.cluster_centers_ = _centres(vectors, self.labels_)
        self.n_clusters_ = len(self.cluster_centers_)
        self.n_features_in_ = vectors.shape[1]
        return self

    def _wanted_clusters(self, rows: int) -> int:
        n = self.n_clusters
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
            raise InvalidInputError(f"n_clusters must be a whole number ≥ 1, got {n!r}")
        if n > rows:
            raise InvalidInputError(f"cannot make {n} clusters from {rows} items")
        return int(n)

    def _kmeans(self, points: np.ndarray, spherical: bool) -> np.ndarray:
        """Spherical k-means on unit vectors; plain k-means on UMAP coordinates."""
        import faiss

        k = self._wanted_clusters(len(points))
        points = np.ascontiguousarray(points, dtype=np.float32)
        kmeans = faiss.Kmeans(
            points.shape[1], k, niter=self.max_iter, nredo=max(1, self.n_init),
            spherical=spherical, seed=1234 if self.random_state is None else self.random_state,
            min_points_per_centroid=1, verbose=False,
            # a sample of 256 per centroid in 384-d; every point in UMAP's few dimensions
            max_points_per_centroid=256 if spherical else len(points),
        )  # fmt: skip
        kmeans.train(points)
        _, nearest = kmeans.index.search(points, 1)
        return _renumber(nearest[:, 0])

    def _agglomerative(self, vectors: np.ndarray) -> np.ndarray:
        from sklearn.cluster import AgglomerativeClustering

        if len(vectors) > MAX_AGGLOMERATIVE:
            raise InvalidInputError(
                f"agglomerative clustering needs memory growing with n²; {len(vectors):,} "
                f"items is over its limit of {MAX_AGGLOMERATIVE:,}: use method='kmeans'"
            )
        threshold = self.distance_threshold
        if threshold is not None and threshold <= 0:
            raise InvalidInputError(f"distance_threshold must be positive, got {threshold}")
        model = AgglomerativeClustering(
            n_clusters=None if threshold is not None else self._wanted_clusters(len(vectors)),
            distance_threshold=threshold,
            linkage=self.linkage,
            metric="euclidean" if self.linkage == "ward" else "cosine",
        )
        return _renumber(model.fit_predict(vectors))

    def _hdbscan(self, points: np.ndarray) -> np.ndarray:
        from sklearn.cluster import HDBSCAN

        size = self.min_cluster_size
        if size is None:
            size = min(len(points), max(10, len(points) // 200))
        if not isinstance(size, int) or size < 2:
            raise InvalidInputError(f"min_cluster_size must be a whole number ≥ 2, got {size!r}")
        if size > len(points):
            raise InvalidInputError(
                f"min_cluster_size {size} is more than the {len(points)} items given"
            )
        labels = HDBSCAN(min_cluster_size=size, metric="euclidean", copy=True).fit_predict(points)
        return _renumber(labels)

    @property
    def _dims(self) -> int | None:
        """The dimensions to reduce to before clustering (None: none)."""
        dims = self.reduce_dims
        if dims == "auto":
            return 5 if self.method == "hdbscan" else None
        if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
            raise InvalidInputError(
                f"reduce_dims must be a whole number ≥ 1, 'auto' or None, got {dims!r}"
            )
        return dims

    def _reduced(self, vectors: np.ndarray) -> np.ndarray:
        dims = self._dims
        if dims is None or dims >= vectors.shape[1] or len(vectors) <= dims + 2:
            return vectors
        try:
            from umap import UMAP
        except ImportError:
            log.warning("umap-learn is not installed: HDBSCAN runs on the full vectors")
            return vectors
        reducer = UMAP(
            n_components=dims, n_neighbors=min(15, len(vectors) - 1), min_dist=0.0,
            metric="cosine", random_state=self.random_state, n_jobs=1,
        )  # fmt: skip
        return np.asarray(reducer.fit_transform(vectors), dtype=np.float32)

    def transform(self, X: Any) -> np.ndarray:
        """Cosine distance from each row to each cluster centre."""
        check_is_fitted(self, "cluster_centers_")
        vectors = self._check_features(X)
        return np.asarray(1.0 - vectors @ self.cluster_centers_.T, dtype=np.float32)

    def predict(self, X: Any) -> np.ndarray:
        """The nearest cluster centre for each row."""
        return np.asarray(self.transform(X).argmin(axis=1), dtype=np.int64)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean cosine similarity of each row to its nearest centre (higher is tighter)."""
        return float(1.0 - self.transform(X).min(axis=1).mean())

    def _check_features(self, X: Any) -> np.ndarray:
        vectors = as_unit_rows(X)
        if vectors.shape[1] != self.n_features_in_:
            raise InvalidInputError(
                f"vectors have {vectors.shape[1]} dimensions; the clusters were fitted on "
                f"{self.n_features_in_}"
            )
        if not self.n_clusters_:
            raise InvalidInputError("no clusters were found (every item was an outlier)")
        return vectors


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Cluster ids 0, 1, … by decreasing size (ties: first seen); outliers stay -1."""
    labels = np.asarray(labels, dtype=np.int64)
    kept = labels[labels != OUTLIER]
    if not len(kept):
        return labels
    ids, first, counts = np.unique(kept, return_index=True, return_counts=True)
    order = ids[np.lexsort((first, -counts))]
    mapping = {int(old): new for new, old in enumerate(order)}
    return np.array([mapping.get(int(v), OUTLIER) for v in labels], dtype=np.int64)


def _centres(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The unit mean vector of each cluster, in cluster-id order."""
    count = int(labels.max()) + 1 if len(labels) else 0
    sums = np.zeros((max(count, 0), vectors.shape[1]), dtype=np.float64)
    members = labels != OUTLIER
    np.add.at(sums, labels[members], vectors[members])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
