"""Analysis on a collection's embeddings: clusters with topic labels, recommendations from liked
and disliked examples, near-duplicate groups, and the 2-D map the web page draws.

Each route reads the stored vectors and changes nothing. The work is CPU-bound (FAISS,
scikit-learn, UMAP), so the handlers are plain functions that FastAPI runs in its threadpool,
and the collection counts as busy meanwhile (it cannot be deleted from under the route).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from embedstack.collection import MAP_LIMIT, Collection
from embedstack.server.deps import State
from embedstack.server.state import ServerState

router = APIRouter(prefix="/collections", tags=["analysis"])

MAX_CLUSTERS = 1000
MAX_EXAMPLES = 100  # positive or negative examples in one recommend request
MAX_RESULTS = 1000
TEXT_CHARS = 300  # of a duplicate's text, as of a cluster's examples and a map's points


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


@contextmanager
def _in_use(state: ServerState, name: str) -> Iterator[Collection]:
    """The collection, marked busy while the block runs."""
    collection = state.collections.get(name)
    state.collections.mark_busy(name, True)
    try:
        yield collection
    finally:
        state.collections.mark_busy(name, False)


def _seconds(started: float) -> float:
    return round(time.perf_counter() - started, 4)


# ---- clusters ----------------------------------------------------------------------------------


class ClusterRequest(Strict):
    method: Literal["kmeans", "agglomerative", "hdbscan"] = "kmeans"
    n_clusters: int | None = Field(
        None, ge=1, le=MAX_CLUSTERS,
        description="Default: √(n/2) between 2 and 50; hdbscan finds the number itself.",
    )  # fmt: skip
    filter: dict[str, Any] | None = None
    n_words: int = Field(10, ge=1, le=50, description="c-TF-IDF keywords per cluster.")
    n_examples: int = Field(3, ge=0, le=20, description="Most central members per cluster.")
    min_cluster_size: int | None = Field(
        None, ge=2, le=1_000_000, description="hdbscan only; default 0.5% of the items, ≥ 10."
    )
    distance_threshold: float | None = Field(
        None, gt=0, le=4, description="agglomerative only: merge clusters closer than this."
    )
    reduce_dims: Annotated[int, Field(ge=1, le=100)] | Literal["auto"] | None = Field(
        "auto",
        description="Reduce the vectors to this many dimensions with UMAP first; "
        '"auto": 5 for hdbscan, none for the others; null: never.',
    )
    assignments: bool = Field(False, description="Add every record's cluster: {id: cluster}.")


@router.post("/{name}/cluster", summary="Group the records by meaning, each group labelled")
def cluster(name: str, request: ClusterRequest, state: State) -> dict[str, Any]:
    params: dict[str, Any] = {"reduce_dims": request.reduce_dims}
    if request.min_cluster_size is not None:
        params["min_cluster_size"] = request.min_cluster_size
    if request.distance_threshold is not None:
        params["distance_threshold"] = request.distance_threshold
    started = time.perf_counter()
    with _in_use(state, name) as collection:
        report = collection.cluster(
            request.method, request.n_clusters, filter=request.filter,
            n_words=request.n_words, n_examples=request.n_examples, **params,
        )  # fmt: skip
    return {**report.to_dict(assignments=request.assignments), "seconds": _seconds(started)}


# ---- recommend ---------------------------------------------------------------------------------


class ById(Strict):
    id: str


class ByText(Strict):
    text: str


Example = str | ById | ByText | list[float]


class RecommendRequest(Strict):
    positive: list[Example] = Field(
        default_factory=list, max_length=MAX_EXAMPLES,
        description='Liked examples: record ids, {"id": …}, {"text": …} or vectors.',
    )  # fmt: skip
    negative: list[Example] = Field(default_factory=list, max_length=MAX_EXAMPLES)
    strategy: Literal["average_vector", "best_score", "sum_scores"] = "average_vector"
    k: int = Field(10, ge=1, le=MAX_RESULTS)
    filter: dict[str, Any] | None = None


def _examples(examples: list[Example]) -> list[Any]:
    return [e.model_dump() if isinstance(e, BaseModel) else e for e in examples]


@router.post("/{name}/recommend", summary="Records like the positive examples, unlike the negative")
def recommend(name: str, request: RecommendRequest, state: State) -> dict[str, Any]:
    started = time.perf_counter()
    with _in_use(state, name) as collection:
        hits = collection.recommend(
            _examples(request.positive), _examples(request.negative),
            strategy=request.strategy, k=request.k, filter=request.filter,
        )  # fmt: skip
    return {"hits": [hit.to_dict() for hit in hits], "seconds": _seconds(started)}


# ---- duplicates --------------------------------------------------------------------------------


class DuplicatesRequest(Strict):
    threshold: float = Field(0.95, gt=0, le=1, description="Cosine similarity within a group.")
    min_size: int = Field(2, ge=2, le=1_000_000)
    filter: dict[str, Any] | None = None


@router.post("/{name}/duplicates", summary="Groups of near-duplicate records, biggest first")
def duplicates(name: str, request: DuplicatesRequest, state: State) -> dict[str, Any]:
    started = time.perf_counter()
    with _in_use(state, name) as collection:
        groups = collection.duplicates(request.threshold, request.min_size, filter=request.filter)
    return {
        "groups": [
            [{"id": chunk.id, "text": chunk.text[:TEXT_CHARS]} for chunk in group]
            for group in groups
        ],
        "seconds": _seconds(started),
    }


# ---- map ---------------------------------------------------------------------------------------


class MapRequest(Strict):
    method: Literal["umap", "pca", "tsne"] = "umap"
    n_clusters: int | None = Field(None, ge=1, le=MAX_CLUSTERS)
    filter: dict[str, Any] | None = None
    limit: int = Field(
        MAP_LIMIT, ge=1, le=MAP_LIMIT, description="Past this many records, an even sample."
    )


@router.post("/{name}/map", summary="The records in 2-D, with their k-means clusters")
def map_points(name: str, request: MapRequest, state: State) -> dict[str, Any]:
    started = time.perf_counter()
    with _in_use(state, name) as collection:
        found = collection.map_points(
            method=request.method, n_clusters=request.n_clusters, filter=request.filter,
            limit=request.limit,
        )  # fmt: skip
    return {**found, "seconds": _seconds(started)}
