"""Combining ranked lists (reciprocal rank fusion, weighted score fusion) and MMR diversity."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embedstack.errors import InvalidInputError

RRF_K = 60  # Cormack et al. (2009); the constant every RRF implementation uses
Ranked = list[tuple[str, float]]  # (chunk id, score), best first


def reciprocal_rank_fusion(lists: Sequence[Ranked], k: int = RRF_K) -> Ranked:
    """Σ 1/(k + rank) over the lists an id appears in (ranks from 1); best first.

    Rank-based, so it needs no score calibration between BM25 and cosine similarity. Ties
    keep the order in which ids first appear (the first list's first).
    """
    fused: dict[str, float] = {}
    for ranked in lists:
        for rank, (item, _) in enumerate(ranked, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return _best_first(fused)


def _best_first(fused: dict[str, float]) -> Ranked:
    """Sorted by score; a stable sort keeps ties in first-appearance order."""
    return sorted(fused.items(), key=lambda pair: -pair[1])


def weighted_fusion(lists: Sequence[Ranked], weights: Sequence[float]) -> Ranked:
    """Σ weight × min-max-normalised score (an id missing from a list scores 0 there)."""
    if len(weights) != len(lists):
        raise InvalidInputError(f"{len(lists)} ranked lists but {len(weights)} weights")
    fused: dict[str, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        if not ranked:
            continue
        scores = np.array([score for _, score in ranked])
        low, span = scores.min(), scores.max() - scores.min()
        for (item, _), score in zip(ranked, scores, strict=True):
            normalised = (score - low) / span if span > 0 else 1.0
            fused[item] = fused.get(item, 0.0) + weight * float(normalised)
    return _best_first(fused)


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """Maximal marginal relevance: positions of k items, each chosen to maximise
    (1 - diversity) × relevance − diversity × (max cosine to the items already chosen).

    `relevance` is min-max normalised first so the trade-off means the same for any scorer;
    `diversity` 0 keeps the relevance order, 1 picks for novelty alone.
    """
    if not 0.0 <= diversity <= 1.0:
        raise InvalidInputError(f"diversity must be between 0 and 1, got {diversity}")
    n = len(relevance)
    if n == 0:
        return []
    span = relevance.max() - relevance.min()
    relevance = (relevance - relevance.min()) / span if span > 0 else np.ones(n)
    similarity = vectors @ vectors.T
    chosen: list[int] = []
    closest = np.full(n, -np.inf)  # max similarity to anything chosen so far
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        redundancy = np.where(np.isfinite(closest), closest, 0.0)
        value = (1 - diversity) * relevance - diversity * redundancy
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        closest = np.maximum(closest, similarity[best])
    return chosen
