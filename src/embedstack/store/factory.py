"""Open the store a collection's config names: `"local"` (SQLite + FAISS in the folder) or the
URL of a server that holds the rows instead (`postgresql://…`, `milvus://…`, `milvus-lite:…`).

A new backend adds one module implementing `store/base.py`, one entry in `STORES` (keyed by
the URL scheme), and one fixture in the store contract tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from embedstack.config import CollectionConfig
from embedstack.errors import CollectionError, InvalidInputError
from embedstack.store.base import IngestStore

StoreOpener = Callable[[Path, CollectionConfig], IngestStore]

LOCAL = "local"
# URL schemes that name the same backend.
SCHEME_ALIASES = {"postgres": "postgresql", "postgresql+psycopg": "postgresql"}


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


def _open_milvus(folder: Path, config: CollectionConfig) -> IngestStore:
    """`milvus://host:port[/name]` (a server) or `milvus-lite:PATH.db[#name]` (a local file)."""
    try:
        from embedstack.store.milvus import open_milvus
    except ImportError as exc:  # pymilvus is the `milvus` extra
        raise CollectionError(
            f"{folder} keeps its rows in Milvus, which needs `pip install embedstack[milvus]` "
            f"({exc})"
        ) from None
    return open_milvus(folder, config)


def _open_postgres(folder: Path, config: CollectionConfig) -> IngestStore:
    try:
        from embedstack.store.postgres import PostgresStore
    except ImportError as exc:
        raise CollectionError(
            f"{folder} keeps its rows in PostgreSQL, which needs psycopg: "
            f"pip install 'embedstack[postgres]' ({exc})"
        ) from None
    return PostgresStore(
        config.store,
        folder,
        config.dim,
        language=config.keyword_language,
        hnsw_m=config.hnsw_m,
        ef_search=config.ef_search,
        bm25_k1=config.bm25_k1,
        bm25_b=config.bm25_b,
    )


STORES: dict[str, StoreOpener] = {
    LOCAL: _open_local,
    "milvus": _open_milvus,
    "milvus-lite": _open_milvus,
    "postgresql": _open_postgres,
}


def store_kind(spec: str) -> str:
    """The backend a store spec names: `"local"`, or a URL's scheme (`postgresql://u@h/db`
    is `"postgresql"`)."""
    if spec == LOCAL:
        return LOCAL
    scheme = urlsplit(spec).scheme.lower()
    return SCHEME_ALIASES.get(scheme, scheme)


def check_store_spec(spec: str) -> str:
    """A store spec fit to write into collection.toml: a known backend, and no password in it
    (collection.toml is a plain file; the password comes from the environment instead, e.g.
    PGPASSWORD or ~/.pgpass)."""
    kind = store_kind(spec)
    if kind not in STORES:
        raise InvalidInputError(
            f"store {spec!r} is not one this embedstack knows; use "
            + ", ".join("local" if k == LOCAL else f"{k}://…" for k in STORES)
        )
    if kind != LOCAL and urlsplit(spec).password:
        raise InvalidInputError(
            "the store URL holds a password, which would be written to collection.toml; "
            "give it through the environment instead (PGPASSWORD, ~/.pgpass, …)"
        )
    return spec


def open_store(folder: Path, config: CollectionConfig) -> IngestStore:
    """The store for `config.store`; an unknown kind is a clear error, not a KeyError."""
    try:
        opener = STORES[store_kind(config.store)]
    except KeyError:
        raise CollectionError(
            f"{folder} uses store {config.store!r}; this embedstack knows {', '.join(STORES)}"
        ) from None
    return opener(folder, config)
