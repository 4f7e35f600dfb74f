"""`Collection`: the object most users touch — a folder that embeds, stores and searches text."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedstack.config import CONFIG_FILE, CollectionConfig
from embedstack.errors import CollectionError, InvalidInputError
from embedstack.ingest.limits import DEFAULT_MAX_CHARS, DEFAULT_MAX_FILE_MB
from embedstack.models import CATALOG, DEFAULT_MODEL, EmbeddingModel, find_spec, load_model
from embedstack.models.cache import DEFAULT_MAX_ENTRIES, CachedEncoder, EmbeddingCache
from embedstack.rows import validate_rows
from embedstack.search.engine import DEFAULT_CANDIDATES, SearchEngine, SearchOptions
from embedstack.search.rerank import Reranker, load_reranker
from embedstack.store.analyzer import Analyzer
from embedstack.store.filters import parse_filter
from embedstack.store.local import DB_FILE, LocalStore
from embedstack.store.vector_index import INDEX_KINDS
from embedstack.types import Chunk, Hit, SourceRecord

if TYPE_CHECKING:
    from embedstack.ingest.pipeline import IngestReport
    from embedstack.rag.answer import Answer
    from embedstack.rag.asking import AnswerStream
    from embedstack.rag.llm import ChatModel, Message

Filter = Mapping[str, Any]
EncoderLike = EmbeddingModel
CACHE_FILE = "embedding-cache.db"


def _canonical_name(model: str | None) -> str | None:
    """Catalog names and aliases map to the catalog name; local paths to their absolute path."""
    if model is None or model.startswith("openai:"):
        return model
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else find_spec(model).name


def _content_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


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
        encoder: EncoderLike | None = None,
        cache_size: int = DEFAULT_MAX_ENTRIES,
    ):
        self.folder = folder
        self.config = config
        self._encoder = encoder
        self._cache_size = cache_size
        self._model: EncoderLike | None = None
        self._cache: EmbeddingCache | None = None
        self._rerankers: dict[str, Reranker] = {}
        self._llms: dict[tuple[str, str | None], ChatModel] = {}
        self._conversations: dict[str, list[Message]] = {}
        self._store = LocalStore(
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
        self._engine = SearchEngine(self._store, lambda: self.model)

    # ---- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        model: str | EncoderLike | None = None,
        *,
        create: bool = True,
        index: str | None = None,
        hnsw_m: int = 32,
        ef_search: int = 64,
        cache_size: int = DEFAULT_MAX_ENTRIES,
    ) -> Collection:
        """Open the collection in `path`, creating it (with `model`, default MiniLM) if missing.

        `index="hnsw"` builds an approximate HNSW index for large collections; the default is
        exact search. Opening with a model other than the one the collection was built with
        is an error, since its vectors would not be comparable. Embeddings of texts are cached
        in the folder (`cache_size` entries at most; 0 turns the cache off).
        """
        folder = Path(path)
        encoder = None if model is None or isinstance(model, str) else model
        wanted = encoder.name if encoder is not None else _canonical_name(model)
        if (folder / CONFIG_FILE).is_file():
            config = CollectionConfig.read(folder)
            if wanted is not None and wanted != config.model:
                raise CollectionError(
                    f"{folder} was built with model {config.model!r} ({config.dim}-d); "
                    f"it cannot be searched with {wanted!r}"
                )
            if index is not None and index != config.index:
                raise CollectionError(
                    f"{folder} was created with index {config.index!r}, not {index!r}"
                )
        else:
            if not create:
                raise CollectionError(f"no collection at {folder} (no {CONFIG_FILE} there)")
            if (folder / DB_FILE).exists():
                raise CollectionError(f"{folder} has {DB_FILE} but no {CONFIG_FILE}; not opening")
            if folder.exists() and not folder.is_dir():
                raise CollectionError(f"{folder} exists and is not a folder")
            index = index or "flat"
            if index not in INDEX_KINDS:
                raise InvalidInputError(f"index must be one of {INDEX_KINDS}, got {index!r}")
            wanted = wanted or DEFAULT_MODEL
            if encoder is None and wanted not in CATALOG:  # a local path: load it to learn its dim
                encoder = load_model(wanted)
            dim = encoder.dim if encoder is not None else CATALOG[wanted].dim
            config = CollectionConfig(
                model=wanted, dim=dim, index=index, hnsw_m=hnsw_m, ef_search=ef_search
            )
            folder.mkdir(parents=True, exist_ok=True)
            config.write(folder)
        if encoder is not None and encoder.dim != config.dim:
            raise CollectionError(
                f"{folder} holds {config.dim}-d vectors; {encoder.name!r} makes {encoder.dim}-d"
            )
        return cls(folder, config, encoder, cache_size)

    @property
    def model(self) -> EncoderLike:
        """The collection's encoder, loaded on first use (opening a collection stays fast)."""
        if self._model is None:
            encoder = self._encoder or load_model(self.config.model)
            if self._cache_size > 0:
                self._cache = EmbeddingCache(self.folder / CACHE_FILE, self._cache_size)
                self._model = CachedEncoder(encoder, self._cache)
            else:
                self._model = encoder
        return self._model

    def close(self) -> None:
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
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise InvalidInputError("nothing to add: texts is empty")
        ids = (
            [_content_id(t) if isinstance(t, str) else "" for t in texts]
            if ids is None
            else list(ids)
        )
        metadata = [{} for _ in texts] if metadata is None else list(metadata)
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
        *,
        glob: str | None = None,
        sync: bool = False,
        chunk_tokens: int | None = None,
        overlap: int = 0,
        text_field: str | None = None,
        contextual: bool = True,
        max_file_mb: float = DEFAULT_MAX_FILE_MB,
        max_chars: int = DEFAULT_MAX_CHARS,
        show_progress: bool = False,
    ) -> IngestReport:
        """Load, clean, chunk, embed and store files and folders (recursively); incremental.

        Formats: PDF, DOCX, HTML, Markdown, text, CSV and JSONL (`text_field` names the text
        column; the others become metadata). Chunks hold at most `chunk_tokens` of the model's
        tokens (default: as many as it reads, less room for a `contextual` header of file name,
        title and headings that is embedded with each chunk but not stored). Unchanged files
        are skipped; a changed file's chunks are replaced in one transaction; with `sync`,
        files gone from the folders are removed. Files that fail are listed in the report.
        """
        from embedstack.ingest.pipeline import Ingestor

        if isinstance(paths, str | Path):
            paths = [paths]
        ingestor = Ingestor(
            self.model, self._store, chunk_tokens=chunk_tokens, overlap=overlap,
            text_field=text_field, glob=glob, sync=sync, contextual=contextual,
            max_file_mb=max_file_mb, max_chars=max_chars, show_progress=show_progress,
        )  # fmt: skip
        return ingestor.run(list(paths))

    def sources(self) -> list[SourceRecord]:
        """The ingested files (the manifest): path, content hash, format, chunk ids."""
        return self._store.sources()

    def delete(self, ids: str | Sequence[str]) -> int:
        """Delete by id; returns how many of the ids existed."""
        ids = [ids] if isinstance(ids, str) else list(ids)
        return self._store.delete(ids)

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, ids: str | Sequence[str]) -> list[Chunk]:
        """The stored chunks among `ids`, in the order asked (missing ids are left out)."""
        return self._store.get([ids] if isinstance(ids, str) else list(ids))

    def count(self, filter: Filter | None = None) -> int:
        return self._store.count(filter)

    def search(
        self,
        query: str | Sequence[float] | np.ndarray,
        k: int = 10,
        filter: Filter | None = None,
        *,
        mode: str = "hybrid",
        rerank: str | Reranker | None = None,
        diversity: float = 0.0,
        fusion: str = "rrf",
        candidates: int = DEFAULT_CANDIDATES,
    ) -> list[Hit]:
        """The k best chunks for a query text (or vector), optionally filtered by metadata.

        `mode`: "hybrid" (default: BM25 and dense candidates fused by reciprocal rank),
        "dense" (cosine similarity) or "keyword" (BM25). `rerank`: a reranker, a
        sentence-transformers CrossEncoder folder, or "builtin". `diversity` (0–1) reorders by
        MMR so near-duplicates do not crowd the list. `fusion="weighted"` fuses min-max
        normalised scores instead of ranks. Filters apply inside every stage. A vector query
        searches dense only. Each hit's `scores_by_stage` holds every stage's score and rank.
        """
        if isinstance(query, str):
            queries: Sequence[str] | np.ndarray = [query]
        else:
            vector = np.asarray(query, dtype=np.float32)
            if vector.ndim != 1:
                raise InvalidInputError(f"a query vector must be 1-D, got shape {vector.shape}")
            queries = vector[None, :]
        return self.search_batch(
            queries, k, filter, mode=mode, rerank=rerank, diversity=diversity, fusion=fusion,
            candidates=candidates,
        )[0]  # fmt: skip

    def search_batch(
        self,
        queries: Sequence[str] | np.ndarray,
        k: int = 10,
        filter: Filter | None = None,
        *,
        mode: str = "hybrid",
        rerank: str | Reranker | None = None,
        diversity: float = 0.0,
        fusion: str = "rrf",
        candidates: int = DEFAULT_CANDIDATES,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> list[list[Hit]]:
        """Search many queries at once (texts, or a 2-D array of vectors: dense only)."""
        parse_filter(filter)  # reject a bad filter before spending time on encoding
        if isinstance(queries, np.ndarray):
            queries = self._check_vectors(queries)
            if mode == "hybrid":
                mode = "dense"  # nothing to match keywords against
        else:
            queries = list(queries)
            for position, query in enumerate(queries):
                if not isinstance(query, str) or not query.strip():
                    raise InvalidInputError(f"query {position} is empty or not a string")
        options = SearchOptions(
            mode=mode, fusion=fusion, candidates=candidates, diversity=diversity,
            rerank=self._reranker(rerank),
        )  # fmt: skip
        return self._engine.search(
            queries, k, filter, options, batch_size=batch_size, show_progress=show_progress
        )

    def _reranker(self, rerank: str | Reranker | None) -> Reranker | None:
        if rerank is None or not isinstance(rerank, str):
            return rerank
        if rerank not in self._rerankers:
            self._rerankers[rerank] = load_reranker(rerank, self.model)
        return self._rerankers[rerank]

    def ask(
        self,
        question: str,
        k: int = 5,
        llm: str | ChatModel | None = None,
        *,
        stream: bool = False,
        history: Sequence[Message] = (),
        session: str | None = None,
        min_relevance: float | None = None,
        answer_tokens: int = 256,
        base_url: str | None = None,
    ) -> Answer | AnswerStream:
        """Answer a question from this collection, citing the chunks it used as [n].

        Retrieves k chunks (hybrid), packs as many as fit the LLM's context window into a
        prompt (lowest-ranked dropped first), generates, and maps [n] markers to citations;
        numbers the LLM invents are removed. When no chunk is relevant enough
        (`min_relevance`, cosine), it answers that the documents do not say, without calling
        the LLM. `llm`: "smollm2" (default, offline), "openai:MODEL" with `base_url`, or a
        `ChatModel`. `history`: earlier {"role", "content"} turns; a follow-up question is
        rewritten with them before retrieval. `session`: any name; this collection object keeps
        that conversation's turns (in memory) and uses them as `history`. With `stream=True`,
        iterate over the returned object for text as it arrives; its `.answer` is filled in at
        the end.
        """
        from embedstack.rag.asking import DEFAULT_MIN_RELEVANCE, AnswerStream, ask
        from embedstack.rag.loader import DEFAULT_LLM, load_llm

        if session is not None and history:
            raise InvalidInputError("pass history= or session=, not both")
        if llm is None or isinstance(llm, str):
            key = (llm or DEFAULT_LLM, base_url)
            if key not in self._llms:
                self._llms[key] = load_llm(key[0], base_url=base_url)
            llm = self._llms[key]
        turns = self._conversations.setdefault(session, []) if session is not None else None
        result = ask(
            self, question, llm, k=k, stream=stream, history=history if turns is None else turns,
            min_relevance=DEFAULT_MIN_RELEVANCE if min_relevance is None else min_relevance,
            answer_tokens=answer_tokens,
        )  # fmt: skip
        if turns is None:
            return result

        def remember(answer: Answer) -> None:
            turns.extend([{"role": "user", "content": question},
                          {"role": "assistant", "content": answer.text}])  # fmt: skip

        if isinstance(result, AnswerStream):
            return result.when_done(remember)
        remember(result)
        return result

    def conversation(self, session: str) -> list[Message]:
        """The turns `ask(..., session=session)` has kept so far (a copy)."""
        return list(self._conversations.get(session, []))

    def info(self) -> dict[str, Any]:
        return {
            "path": str(self.folder),
            "model": self.config.model,
            "dim": self.config.dim,
            "index": self.config.index,
            "count": self.count(),
            "format_version": self.config.format_version,
        }

    def _check_vectors(self, vectors: Any, rows: int | None = None) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32)
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
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        if (norms == 0).any():
            raise InvalidInputError("vectors must not be all zeros")
        return array / norms
