"""Open the store a collection's config names: `"local"` (SQLite + FAISS in the folder) today.

A new backend (PostgreSQL/pgvector, Milvus) adds one module implementing `store/base.py`, one
entry here, and one fixture in the store contract tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from embedstack.config import CollectionConfig
from embedstack.errors import CollectionError
from embedstack.store.base import IngestStore

StoreOpener = Callable[[Path, CollectionConfig], IngestStore]


def _open_local(folder: Path, config: CollectionConfig) -> IngestStore:
    from embedstack.store.analyzer import Analyzer
    from embedstack.store.local import LocalStore

    return LocalStore(
        folder,
        config.dim,
        config.index,
        hnsw_m=config.hnsw_m,
        ef_search=config.ef_search,
        analyzer=Analyzer(config.keyword_language, config.keyword_stopwords),
        bm25_k1=config.bm25_k1,
        bm25_b=config.bm25_b,
        bm25_document_weight=config.bm25_document_weight,
    )


STORES: dict[str, StoreOpener] = {"local": _open_local}


def open_store(folder: Path, config: CollectionConfig) -> IngestStore:
    """The store for `config.store`; an unknown kind is a clear error, not a KeyError."""
    try:
        opener = STORES[config.store]
    except KeyError:
        raise CollectionError(
            f"{folder} uses store {config.store!r}; this embedstack knows {', '.join(STORES)}"
        ) from None
    return opener(folder, config)
