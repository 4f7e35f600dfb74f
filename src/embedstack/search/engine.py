"""One search pipeline for every mode: candidates → fusion → rerank → diversity → top k.

Each stage records its score and rank on the hit (`Hit.scores_by_stage`), which is what
`embedstack search --explain` prints. The engine sees the store only through the store
protocol (`store/base.py`): string ids, a parsed filter, (id, score) lists.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

import numpy as np

from embedstack.errors import CollectionClosedError, InvalidInputError
from embedstack.models import EmbeddingModel
from embedstack.search.fusion import Ranked, mmr, reciprocal_rank_fusion, weighted_fusion
from embedstack.search.options import SearchOptions
from embedstack.search.rerank import Reranker
from embedstack.store.base import KEYWORD, KeywordSearch, VectorStore
from embedstack.store.filters import FilterNode, matches, parse_filter
from embedstack.types import Chunk, Hit

KEYWORD_WORKERS = max(2, min(8, os.cpu_count() or 2))  # BM25 searches run beside embedding


class SearchEngine:
    """Runs `SearchOptions` over a store, embedding queries with the collection's model.

    Safe to use from many threads: BM25 runs in this engine's own small thread pool (one
    per collection, not one for the whole process), beside the query's embedding.
    """

    def __init__(
        self,
        store: VectorStore,
        model: Callable[[], EmbeddingModel],
        reranker: Callable[[str | Reranker], Reranker],
    ) -> None:
        self.store = store
        self._model = model
        self._reranker = reranker
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool, self._closed = self._pool, None, True
        if pool is not None:
            pool.shutdown(wait=True)

    def _keyword_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._closed:
                raise CollectionClosedError("the collection is closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(KEYWORD_WORKERS, "embedstack-bm25")
            return self._pool

    def search(
        self,
        queries: Sequence[str] | np.ndarray,
        options: SearchOptions,
        *,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> list[list[Hit]]:
        options.check()
        where = parse_filter(options.filter)
        texts: list[str]
        vectors: np.ndarray | None = None
        if isinstance(queries, np.ndarray):
            if options.mode == "keyword" or options.rerank is not None:
                raise InvalidInputError("keyword search and reranking need query text, not vectors")
            vectors, texts = queries, []
            rows = len(queries)
        else:
            texts = list(queries)
            rows = len(texts)
        reranker = self._reranker(options.rerank) if options.rerank is not None else None
        depth = max(options.candidates, options.k, options.rerank_depth if reranker else 0)
        keyword_lists: Future[list[Ranked]] | None = None
        if options.mode != "dense" and vectors is None:
            if KEYWORD not in self.store.capabilities:
                raise InvalidInputError(
                    f"this store has no keyword index: use mode='dense', not {options.mode!r}"
                )
            store = cast(KeywordSearch, self.store)
            # BM25 runs in a worker thread while this one embeds the query and searches vectors.
            keyword_lists = self._keyword_pool().submit(
                lambda: [store.keyword(t, depth, where) for t in texts]
            )
        dense_lists: list[Ranked] = [[] for _ in range(rows)]
        if options.mode != "keyword":
            if vectors is None:
                vectors = self._model().encode_query(
                    texts, batch_size=batch_size, show_progress_bar=show_progress
                )
            dense_lists = self.store.dense(vectors, depth, where)
        keyword = keyword_lists.result() if keyword_lists else [[] for _ in range(rows)]
        return [
            self._one(texts[row] if texts else None, dense_lists[row], keyword[row], options,
                      reranker, where)
            for row in range(rows)
        ]  # fmt: skip

    def _one(
        self,
        text: str | None,
        dense: Ranked,
        keyword: Ranked,
        options: SearchOptions,
        reranker: Reranker | None,
        where: FilterNode | None,
    ) -> list[Hit]:
        k = options.k
        stages: dict[str, dict[str, float]] = {}
        for name, ranked in (("dense", dense), ("keyword", keyword)):
            for rank, (id_, score) in enumerate(ranked, start=1):
                stages.setdefault(id_, {}).update({name: score, f"{name}_rank": rank})
        if options.mode == "dense":
            ranked = dense
        elif options.mode == "keyword":
            ranked = keyword
        # Keyword first: where fused scores tie, the exact-term match goes first.
        elif options.fusion == "rrf":
            ranked = _record(reciprocal_rank_fusion([keyword, dense]), "hybrid", stages)
        else:
            weights = [1 - options.dense_weight, options.dense_weight]
            ranked = _record(weighted_fusion([keyword, dense], weights), "hybrid", stages)
        chunks: dict[str, Chunk] = {}
        # MMR weighs scores on one scale: the reranked head's, else the first stage's.
        one_scale = max(k * 4, options.rerank_depth)
        if reranker is not None and text is not None and ranked:
            chunks = self._chunks([id_ for id_, _ in ranked[: options.rerank_depth]], where)
            head = [pair for pair in ranked[: options.rerank_depth] if pair[0] in chunks]
            scores = reranker.score(text, [chunks[id_].text for id_, _ in head])
            order = np.argsort(-scores, kind="stable")
            reranked = [(head[i][0], float(scores[i])) for i in order]
            if getattr(reranker, "fuses_retrievers", False):
                reranked = _fuse_with_retrievers(reranked, stages)
            # Below the reranked head, the first-stage order (and score) stands.
            ranked = _record(reranked, "rerank", stages) + ranked[options.rerank_depth :]
            one_scale = len(reranked)
        if options.diversity > 0 and ranked:
            head, tail = ranked[:one_scale], ranked[one_scale:]
            ids = [id_ for id_, _ in head]
            picked = mmr(
                np.array([score for _, score in head]),
                self.store.vectors(ids),
                k,
                options.diversity,
            )
            # Below a reranked head shorter than k, the first-stage order fills up to k.
            ranked = [head[i] for i in picked] + tail
            for position, i in enumerate(picked, start=1):
                stages[ids[i]]["mmr_rank"] = position
        missing = [id_ for id_, _ in ranked[:k] if id_ not in chunks]
        chunks.update(self._chunks(missing, where))
        return [
            Hit(chunks[id_], score, stages.get(id_, {}))
            for id_, score in ranked[:k]
            if id_ in chunks
        ]

    def _chunks(self, ids: list[str], where: FilterNode | None) -> dict[str, Chunk]:
        """The chunks that exist now and still pass the filter.

        Candidates come from several reads; a write committed between them (by another
        thread or process) may have deleted a row or changed its metadata. Checking the
        fetched rows against the filter again keeps every hit true to one committed state.
        """
        found = self.store.get(ids)
        return {c.id: c for c in found if where is None or matches(where, c.metadata)}


def _fuse_with_retrievers(reranked: Ranked, stages: dict[str, dict[str, float]]) -> Ranked:
    """RRF of the reranker's order with the dense and keyword orders of the same candidates."""
    votes = [reranked]
    for stage in ("dense_rank", "keyword_rank"):
        order = sorted(reranked, key=lambda pair: stages[pair[0]].get(stage, float("inf")))
        votes.append(order)
    return reciprocal_rank_fusion(votes)


def _record(ranked: Ranked, stage: str, stages: dict[str, dict[str, float]]) -> Ranked:
    for rank, (id_, score) in enumerate(ranked, start=1):
        stages.setdefault(id_, {}).update({stage: score, f"{stage}_rank": rank})
    return ranked
