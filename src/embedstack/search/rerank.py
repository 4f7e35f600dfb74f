"""Rerankers: re-score a query's top candidates with a slower, more precise model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from embedstack.errors import InvalidInputError
from embedstack.models import EmbeddingModel, load_model
from embedstack.models.cache import CachedEncoder, EmbeddingCache
from embedstack.search.fusion import RRF_K


class Reranker(Protocol):
    name: str

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """One relevance score per text (higher is better)."""
        ...


BUILTIN_RERANK_MODEL = "all-mpnet-base-v2"


class BiEncoderReranker:
    """Re-score candidates with a stronger bi-encoder from the catalog, fused by rank.

    No cross-encoder ships with weights, so the built-in reranker embeds the query and the
    candidates with a second, stronger model and fuses its ranking with the incoming order by
    reciprocal rank (the candidates arrive best first). Fusing, rather than replacing, keeps
    what BM25 contributed: the second model alone would undo the keyword evidence.
    Candidate embeddings go through the collection's embedding cache when one is given.
    """

    def __init__(self, model: EmbeddingModel) -> None:
        self.model = model
        self.name = f"bi-encoder:{model.name}"

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty(0, dtype=np.float32)
        query_vector = self.model.encode_query([query])[0]
        similarity = self.model.encode_document(list(texts)) @ query_vector
        own_rank = np.empty(len(texts), dtype=np.int64)
        own_rank[np.argsort(-similarity, kind="stable")] = np.arange(1, len(texts) + 1)
        incoming_rank = np.arange(1, len(texts) + 1)
        return (1.0 / (RRF_K + incoming_rank) + 1.0 / (RRF_K + own_rank)).astype(np.float32)


def load_reranker(spec: str, cache: EmbeddingCache | None = None) -> Reranker:
    """A reranker by name: "builtin" (a stronger catalog bi-encoder) or a CrossEncoder folder."""
    from embedstack.search.cross_encoder import CrossEncoderReranker

    if spec == "builtin":
        model = load_model(BUILTIN_RERANK_MODEL)
        return BiEncoderReranker(CachedEncoder(model, cache) if cache is not None else model)
    if Path(spec).expanduser().is_dir():
        return CrossEncoderReranker(Path(spec).expanduser())
    raise InvalidInputError(
        f"unknown reranker {spec!r}: use 'builtin' or a sentence-transformers CrossEncoder folder"
    )
