"""One search pipeline for every mode: candidates → fusion → rerank → diversity → top k.

Each stage records its score and rank on the hit (`Hit.scores_by_stage`), which is what
`embedstack search --explain` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedstack.errors import InvalidInputError
from embedstack.models import EmbeddingModel
from embedstack.search.fusion import Ranked, mmr, reciprocal_rank_fusion, weighted_fusion
from embedstack.search.rerank import Reranker
from embedstack.store.local import LocalStore
from embedstack.types import Chunk, Hit

MODES = ("hybrid", "dense", "keyword")
FUSIONS = ("rrf", "weighted")
_KEYWORD_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedstack-bm25")
DEFAULT_CANDIDATES = 100  # per retriever, before fusion
DEFAULT_RERANK_DEPTH = 20  # how many fused candidates a reranker re-scores


@dataclass(frozen=True)
class SearchOptions:
    mode: str = "hybrid"
    fusion: str = "rrf"
    dense_weight: float = 0.5  # weighted fusion only; keyword gets 1 - dense_weight
    candidates: int = DEFAULT_CANDIDATES
    rerank: Reranker | None = None
    rerank_depth: int = DEFAULT_RERANK_DEPTH
    diversity: float = 0.0  # MMR: 0 = off

    def check(self) -> None:
        if self.mode not in MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.fusion not in FUSIONS:
            raise InvalidInputError(f"fusion must be one of {', '.join(FUSIONS)}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise InvalidInputError("dense_weight must be between 0 and 1")
        if not 0.0 <= self.diversity <= 1.0:
            raise InvalidInputError(f"diversity must be between 0 and 1, got {self.diversity}")
        if self.candidates < 1 or self.rerank_depth < 1:
            raise InvalidInputError("candidates and rerank_depth must be at least 1")


class SearchEngine:
    """Runs `SearchOptions` over a store, embedding queries with the collection's model."""

    def __init__(self, store: LocalStore, model: Callable[[], EmbeddingModel]) -> None:
        self.store = store
        self._model = model

    def search(
        self,
        queries: Sequence[str] | np.ndarray,
        k: int,
        filter: Mapping[str, Any] | None,
        options: SearchOptions,
        *,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> list[list[Hit]]:
        options.check()
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        allowed = self.store.allowed(filter)
        texts: list[str | None]
        if isinstance(queries, np.ndarray):
            if options.mode == "keyword" or options.rerank is not None:
                raise InvalidInputError("keyword search and reranking need query text, not vectors")
            vectors, texts = queries, [None] * len(queries)
        else:
            texts, vectors = list(queries), None
        depth = max(options.candidates, k, options.rerank_depth if options.rerank else 0)
        keyword_lists: Future | None = None
        if options.mode != "dense" and vectors is None:
            # BM25 runs in a worker thread while this one embeds the query and searches vectors.
            keyword_lists = _KEYWORD_WORKER.submit(
                lambda: [self.store.keyword(t, depth, allowed, concurrent=True) for t in texts]
            )
        dense_lists: list[Ranked] = [[] for _ in texts]
        if options.mode != "keyword":
            if vectors is None:
                vectors = self._model().encode_query(
                    texts, batch_size=batch_size, show_progress_bar=show_progress
                )
            dense_lists = self.store.dense(vectors, depth, allowed)
        keyword = keyword_lists.result() if keyword_lists else [[] for _ in texts]
        return [
            self._one(text, dense_lists[row], keyword[row], k, options)
            for row, text in enumerate(texts)
        ]

    def _one(
        self, text: str | None, dense: Ranked, keyword: Ranked, k: int, options: SearchOptions
    ) -> list[Hit]:
        stages: dict[int, dict[str, float]] = {}
        for name, ranked in (("dense", dense), ("keyword", keyword)):
            for rank, (vid, score) in enumerate(ranked, start=1):
                stages.setdefault(vid, {}).update({name: score, f"{name}_rank": rank})
        if options.mode == "dense":
            ranked = dense
        elif options.mode == "keyword":
            ranked = keyword
        elif options.fusion == "rrf":
            ranked = _record(reciprocal_rank_fusion([dense, keyword]), "hybrid", stages)
        else:
            weights = [options.dense_weight, 1 - options.dense_weight]
            ranked = _record(weighted_fusion([dense, keyword], weights), "hybrid", stages)
        chunks: dict[int, Chunk] = {}
        if options.rerank is not None and text is not None and ranked:
            chunks = self.store.chunks([vid for vid, _ in ranked[: options.rerank_depth]])
            head = [pair for pair in ranked[: options.rerank_depth] if pair[0] in chunks]
            scores = options.rerank.score(text, [chunks[vid].text for vid, _ in head])
            order = np.argsort(-scores, kind="stable")
            reranked = [(head[i][0], float(scores[i])) for i in order]
            if getattr(options.rerank, "fuses_retrievers", False):
                reranked = _fuse_with_retrievers(reranked, stages)
            # Below the reranked head, the first-stage order (and score) stands.
            ranked = _record(reranked, "rerank", stages) + ranked[options.rerank_depth :]
        if options.diversity > 0 and ranked:
            head = ranked[: max(k * 4, options.rerank_depth)]
            vids = [vid for vid, _ in head]
            picked = mmr(
                np.array([score for _, score in head]),
                self.store.vectors(vids),
                k,
                options.diversity,
            )
            ranked = [head[i] for i in picked]
            for position, i in enumerate(picked, start=1):
                stages[vids[i]]["mmr_rank"] = position
        missing = [vid for vid, _ in ranked[:k] if vid not in chunks]
        chunks.update(self.store.chunks(missing))
        return [
            Hit(chunks[vid], score, stages.get(vid, {}))
            for vid, score in ranked[:k]
            if vid in chunks
        ]


def _fuse_with_retrievers(reranked: Ranked, stages: dict[int, dict[str, float]]) -> Ranked:
    """RRF of the reranker's order with the dense and keyword orders of the same candidates."""
    votes = [reranked]
    for stage in ("dense_rank", "keyword_rank"):
        order = sorted(reranked, key=lambda pair: stages[pair[0]].get(stage, float("inf")))
        votes.append(order)
    return reciprocal_rank_fusion(votes)


def _record(ranked: Ranked, stage: str, stages: dict[int, dict[str, float]]) -> Ranked:
    for rank, (vid, score) in enumerate(ranked, start=1):
        stages.setdefault(vid, {}).update({stage: score, f"{stage}_rank": rank})
    return ranked
