"""The store seam: what search, ingest and the collection need from a place that keeps chunks.

Written in backend-neutral terms — string ids, a parsed filter tree (`store/filters.py`),
(id, score) pairs — so that the embedded store (SQLite + FAISS) and, later, PostgreSQL/pgvector
or Milvus can stand behind the same calls and pass the same contract tests
(`tests/store/test_store_contract.py`). Keyword search and the ingest manifest are optional
capabilities, declared in `capabilities` and typed by their own small protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embedstack.store.filters import FilterNode
from embedstack.types import Chunk, SourceRecord

Scored = list[tuple[str, float]]  # (chunk id, score), best first

KEYWORD = "keyword"  # capability: BM25 (or full-text) search
MANIFEST = "manifest"  # capability: the ingest manifest (which file produced which chunks)


class VectorStore(Protocol):
    """Chunks (id, text, metadata) with unit-length vectors; every write is all or nothing.

    Implementations must be safe to call from many threads at once and must let readers see
    the last committed state while a write is in progress.
    """

    dim: int
    capabilities: frozenset[str]

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> None:
        """Insert or replace rows by id, in one transaction."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Delete rows by id; returns how many existed."""
        ...

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The stored chunks among `ids`, in the order asked; missing ids are left out."""
        ...

    def ids(self, where: FilterNode | None = None) -> list[str]:
        """The stored ids (those `where` lets through), oldest first."""
        ...

    def count(self, where: FilterNode | None = None) -> int: ...

    def dense(self, queries: np.ndarray, k: int, where: FilterNode | None = None) -> list[Scored]:
        """Top-k (id, cosine) per query vector among the rows `where` lets through; k hits
        whenever k rows match (no post-filtering shortfall)."""
        ...

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of `ids`, in that order (zeros for unknown ids)."""
        ...

    def check(self) -> list[str]:
        """Problems found by a full consistency check (empty when healthy)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class KeywordSearch(Protocol):
    """Capability `"keyword"`: lexical search over the same rows, kept in the same writes."""

    def keyword(self, query: str, k: int, where: FilterNode | None = None) -> Scored: ...


@dataclass(frozen=True)
class FileRows:
    """One file's new chunks and manifest entry, as ingest hands them to the store."""

    source: SourceRecord
    texts: Sequence[str]
    metadatas: Sequence[Mapping[str, Any]]
    vectors: np.ndarray


@runtime_checkable
class IngestManifest(Protocol):
    """Capability `"manifest"`: which file produced which chunks, from which content.

    `replace_source` swaps a file's chunks and its entry in one transaction, which is what
    makes an ingest crash-safe file by file.
    """

    def source(self, path: str) -> SourceRecord | None: ...

    def sources(self) -> list[SourceRecord]: ...

    def replace_source(
        self,
        source: SourceRecord,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> int:
        """Returns how many of the file's old chunks were removed."""
        ...

    def replace_sources(self, files: Sequence[FileRows]) -> list[int]:
        """`replace_source` for several files at once, each still all or nothing (ingest
        commits a batch together: one transaction and one fsync, not one per file)."""
        ...

    def remove_source(self, path: str) -> int: ...


class IngestStore(VectorStore, IngestManifest, Protocol):
    """What ingest needs from a store: its rows and its manifest of files."""
