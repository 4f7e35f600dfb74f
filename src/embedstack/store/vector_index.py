"""The FAISS side of a collection: exact (flat) or HNSW inner-product search over int64 ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

INDEX_KINDS = ("flat", "hnsw")


class VectorIndex:
    """Vectors keyed by int64 ids, searchable within an optional allowed-id subset.

    HNSW graphs cannot drop nodes, so removed ids are kept as tombstones and excluded at search
    time; the store rebuilds the graph when tombstones pile up (see `dead_fraction`).
    """

    def __init__(self, dim: int, kind: str = "flat", hnsw_m: int = 32, ef_search: int = 64) -> None:
        if kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {INDEX_KINDS}, got {kind!r}")
        self.dim = dim
        self.kind = kind
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self._index: Any = self._empty()  # a faiss.IndexIDMap2 (read_index types it as Index)
        self._dead: set[int] = set()

    def _empty(self) -> faiss.IndexIDMap2:
        if self.kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        graph = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = max(40, 2 * self.hnsw_m)
        return faiss.IndexIDMap2(graph)

    def __len__(self) -> int:
        return self._index.ntotal - len(self._dead)

    @property
    def dead_fraction(self) -> float:
        return len(self._dead) / self._index.ntotal if self._index.ntotal else 0.0

    def ids(self) -> np.ndarray:
        """Every id held by the index, tombstones included."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        if self.kind == "flat":
            self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
        else:
            self._dead.update(int(i) for i in ids)

    def mark_dead(self, ids: set[int]) -> None:
        """After loading a saved HNSW index: ids in the graph that the database no longer has."""
        if self.kind == "flat":
            self.remove(np.fromiter(ids, dtype=np.int64, count=len(ids)))
        else:
            self._dead = set(ids)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; missing slots have id -1. `allowed` restricts ids."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, self._index.ntotal))
        if self._index.ntotal == 0:
            empty = np.full((len(queries), 1), -1, dtype=np.int64)
            return np.zeros(empty.shape, dtype=np.float32), empty
        keep_alive: list[Any] = []  # FAISS selectors hold raw pointers: keep them alive
        selector: Any = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            keep_alive.append(selector)
        elif self._dead:
            dead = faiss.IDSelectorBatch(np.fromiter(self._dead, dtype=np.int64))
            selector = faiss.IDSelectorNot(dead)
            keep_alive.extend([dead, selector])
        params: Any
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))  # type: ignore[attr-defined]
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        scores, ids = self._index.search(queries, k, params=params)
        del keep_alive
        return scores, ids

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    def load(self, path: Path) -> None:
        index = faiss.read_index(str(path))
        if index.d != self.dim:
            raise ValueError(f"{path} holds {index.d}-d vectors, expected {self.dim}")
        self._index = index
        self._dead = set()
