"""2-D (or n-D) projections of embeddings for maps: UMAP, PCA or t-SNE behind one estimator.

UMAP keeps local neighbourhoods and places new points, so it is the default; it lives in the
optional `umap-learn` package, and PCA stands in (with a warning) when that is missing, so a map
can always be drawn. t-SNE cannot place new points: its `transform` refuses.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from embedstack.errors import InvalidInputError

log = logging.getLogger(__name__)

METHODS = ("umap", "pca", "tsne")
METRICS = ("cosine", "euclidean")
MIN_ROWS = 3
# From this many rows umap-learn switches to approximate neighbours (pynndescent), whose JIT
# compile costs ~40 s in every new process; exact FAISS neighbours replace it up to EXACT_KNN_MAX.
APPROXIMATE_FROM, EXACT_KNN_MAX = 4096, 50_000


def check_vectors(vectors: Any, what: str = "vectors", min_rows: int = MIN_ROWS) -> np.ndarray:
    """A finite 2-D float32 matrix with at least `min_rows` rows, or a one-line error."""
    if hasattr(vectors, "toarray"):  # scipy.sparse: embeddings are dense
        raise InvalidInputError(f"sparse {what} are not supported; pass a dense array")
    try:
        raw = np.asarray(vectors)
    except (TypeError, ValueError) as exc:  # ragged rows
        raise InvalidInputError(f"{what} must be a 2-D array of numbers") from exc
    if raw.dtype.kind == "c":
        raise InvalidInputError(f"Complex data not supported: {what} must be real numbers")
    try:
        matrix = raw.astype(np.float32, copy=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be a 2-D array of numbers") from exc
    if matrix.ndim != 2:
        raise InvalidInputError(f"{what} must be a 2-D array (rows × dims), got {matrix.ndim}-D")
    if matrix.shape[0] < min_rows:
        raise InvalidInputError(
            f"{what} has {matrix.shape[0]} rows; a projection needs at least {min_rows}"
        )
    if matrix.shape[1] < 1:
        raise InvalidInputError(f"{what} has no dimensions")
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise InvalidInputError(f"{what} row {row} contains NaN or infinity")
    return matrix


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero), so PCA sees cosine geometry."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def exact_neighbours(
    base: np.ndarray, queries: np.ndarray, k: int, metric: str = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of `base` for each query (exact, FAISS) and their distances
    (cosine: 1 - cosine similarity; euclidean: Euclidean), nearest first."""
    import faiss

    if metric == "cosine":
        base, queries = _unit_rows(base), _unit_rows(queries)
        index: Any = faiss.IndexFlatIP(base.shape[1])
    else:
        index = faiss.IndexFlatL2(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    scores, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    distances = 1.0 - scores if metric == "cosine" else np.sqrt(scores)
    return found.astype(np.int32), np.maximum(distances, 0.0).astype(np.float32)


class _ExactSearch:
    """Stands in for umap-learn's NNDescent search index so `transform` can place new points:
    umap-learn calls `query(X, k, epsilon=…)` and reads `_angular_trees`."""

    def __init__(self, base: np.ndarray, metric: str) -> None:
        self.base = base
        self.metric = metric
        self._angular_trees = metric == "cosine"

    def query(self, queries: Any, k: int, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        return exact_neighbours(self.base, np.asarray(queries, dtype=np.float32), k, self.metric)


def _umap_class() -> Any:
    """umap.UMAP, or None when the optional extra is not installed."""
    try:
        from umap import UMAP
    except ImportError:
        return None
    return UMAP


class Projector(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Project vectors to `n_components` dimensions (2 for a map).

    `method`: "umap" (default; PCA when umap-learn is missing), "pca" or "tsne". `metric` is
    the distance in the input space: "cosine" (embeddings) or "euclidean"; for PCA "cosine"
    means the rows are scaled to unit length first. After `fit`, `embedding_` holds the
    projected training rows and `method_` the method actually used.
    """

    def __init__(
        self,
        method: str = "umap",
        n_components: int = 2,
        n_neighbors: int = 15,
        metric: str = "cosine",
        random_state: int | None = 42,
    ) -> None:
        self.method = method
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.random_state = random_state

    # ---- scikit-learn API ----------------------------------------------------------------

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # coordinates are float32
        return tags

    def fit(self, X: Any, y: Any = None) -> Projector:
        """Learn the projection of X; returns self."""
        self._fit(X)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Learn the projection of X and return X projected (the same as `embedding_`)."""
        return self._fit(X).copy()

    def transform(self, X: Any) -> np.ndarray:
        """Place new rows in the learned space (UMAP and PCA; t-SNE cannot)."""
        check_is_fitted(self, "embedding_")
        if self.method_ == "tsne":
            raise InvalidInputError(
                "t-SNE cannot place new points; use fit_transform, or method 'umap' or 'pca'"
            )
        matrix = check_vectors(X, min_rows=1)
        if matrix.shape[1] != self.n_features_in_:
            raise InvalidInputError(
                f"vectors have {matrix.shape[1]} dimensions; the projection was fitted on "
                f"{self.n_features_in_}"
            )
        if self.method_ == "pca":
            # In float64: a float32 product's last bit depends on where a row falls in the
            # BLAS kernel's blocks (AVX-512 sgemm), so a row's place would move its point.
            rows = self._prepare(matrix).astype(np.float64)
            projected = rows @ self.components_.T.astype(np.float64) - self.offset_
            return projected.astype(np.float32)
        projected = self.model_.transform(matrix)
        return np.asarray(projected, dtype=np.float32)

    # ---- fitting ---------------------------------------------------------------------------

    def _check_params(self, n_rows: int, n_dims: int) -> None:
        if self.method not in METHODS:
            raise InvalidInputError(
                f"unknown projection method {self.method!r}; use one of {', '.join(METHODS)}"
            )
        if self.metric not in METRICS:
            raise InvalidInputError(
                f"unknown metric {self.metric!r}; use one of {', '.join(METRICS)}"
            )
        n_components = self.n_components
        if isinstance(n_components, bool) or not isinstance(n_components, int | np.integer):
            raise InvalidInputError(f"n_components must be an integer, got {n_components!r}")
        if n_components < 1:
            raise InvalidInputError(f"n_components must be at least 1, got {n_components}")
        if n_components >= n_rows:
            raise InvalidInputError(
                f"n_components={n_components} needs at least {n_components + 1} rows, got {n_rows}"
            )
        if n_components > n_dims:
            raise InvalidInputError(
                f"n_components={n_components} is more than the {n_dims} input dimensions"
            )
        if self.method == "tsne" and n_components > 3:
            raise InvalidInputError(f"t-SNE projects to at most 3 components, not {n_components}")
        if self.method == "umap" and (isinstance(self.n_neighbors, bool) or self.n_neighbors < 2):
            raise InvalidInputError(f"n_neighbors must be at least 2, got {self.n_neighbors!r}")

    def _prepare(self, matrix: np.ndarray) -> np.ndarray:
        return _unit_rows(matrix) if self.metric == "cosine" else matrix

    def _fit(self, X: Any) -> np.ndarray:
        matrix = check_vectors(X)
        n_rows, n_dims = matrix.shape
        self._check_params(n_rows, n_dims)
        method = self.method
        umap_class = _umap_class() if method == "umap" else None
        if method == "umap" and umap_class is None:
            log.warning("umap-learn is not installed; projecting with PCA instead")
            method = "pca"
        if method == "tsne" and (matrix == matrix[0]).all():
            # scikit-learn's PCA start crashes the process (SIGSEGV) on rows with no spread,
            # and a map of one point repeated says nothing anyway.
            raise InvalidInputError(
                f"all {n_rows} vectors are identical; t-SNE cannot map identical points"
            )
        self.method_ = method
        self.n_features_in_ = n_dims
        self._n_features_out = self.n_components
        if method == "pca":
            embedding = self._fit_pca(matrix)
        elif method == "tsne":
            embedding = self._fit_tsne(matrix)
        else:
            embedding = self._fit_umap(umap_class, matrix)
        self.embedding_ = np.asarray(embedding, dtype=np.float32)
        return self.embedding_

    def _fit_pca(self, matrix: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA

        model = PCA(n_components=self.n_components, random_state=self.random_state)
        embedding = model.fit_transform(self._prepare(matrix))
        self.model_ = model
        # transform() applies these directly: one matrix product, float32 in and out.
        self.components_ = model.components_.astype(np.float32)
        self.offset_ = (model.mean_ @ model.components_.T).astype(np.float32)
        return np.asarray(embedding)

    def _fit_tsne(self, matrix: np.ndarray) -> np.ndarray:
        from sklearn.manifold import TSNE

        # Perplexity must stay below the number of rows; 30 is scikit-learn's default.
        perplexity = float(min(30.0, max(1.0, (matrix.shape[0] - 1) / 3)))
        model = TSNE(
            n_components=self.n_components,
            metric=self.metric,
            perplexity=perplexity,
            init="pca",
            random_state=self.random_state,
        )
        self.model_ = model
        return np.asarray(model.fit_transform(matrix))

    def _fit_umap(self, umap_class: Any, matrix: np.ndarray) -> np.ndarray:
        n_rows = matrix.shape[0]
        n_neighbors = int(min(self.n_neighbors, n_rows - 1))
        options: dict[str, Any] = {
            "n_components": self.n_components,
            "n_neighbors": n_neighbors,
            "metric": self.metric,
            "random_state": self.random_state,
        }
        if self.random_state is not None:
            options["n_jobs"] = 1  # umap-learn is only reproducible single-threaded
        if n_rows <= self.n_components + 2 or n_rows < 10:
            options["init"] = "random"  # the spectral start needs more rows than this
        if APPROXIMATE_FROM <= n_rows <= EXACT_KNN_MAX:
            found, distances = exact_neighbours(matrix, matrix, n_neighbors, self.metric)
            options["precomputed_knn"] = (found, distances, _ExactSearch(matrix, self.metric))
        model = umap_class(**options)
        with warnings.catch_warnings():
            # umap-learn warns that a search index other than its own cannot transform; this
            # one can (see _ExactSearch).
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
            embedding = model.fit_transform(matrix)
        self.model_ = model
        return np.asarray(embedding)


def project(
    vectors: Any, method: str = "umap", n_components: int = 2, random_state: int | None = 42
) -> np.ndarray:
    """Project vectors to `n_components` dimensions in one call (see `Projector`)."""
    return Projector(
        method=method, n_components=n_components, random_state=random_state
    ).fit_transform(vectors)
