"""`SearchOptions`: one search request, as the Python API, the CLI and the server pass it."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedstack.errors import InvalidInputError, LimitExceededError
from embedstack.rows import check_whole_number

if TYPE_CHECKING:
    from embedstack.search.rerank import Reranker

MODES = ("hybrid", "dense", "keyword")
FUSIONS = ("rrf", "weighted")
DEFAULT_CANDIDATES = 100  # per retriever, before fusion
DEFAULT_RERANK_DEPTH = 20  # how many fused candidates a reranker re-scores
MAX_K = 10_000  # hits (and candidates) one search may ask for


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10
    filter: Mapping[str, Any] | None = None
    mode: str = "hybrid"
    fusion: str = "rrf"
    dense_weight: float = 0.5  # weighted fusion only; keyword gets 1 - dense_weight
    candidates: int = DEFAULT_CANDIDATES
    rerank: str | Reranker | None = None  # "builtin", a CrossEncoder folder, or a Reranker
    rerank_depth: int = DEFAULT_RERANK_DEPTH
    diversity: float = 0.0  # MMR: 0 = off

    def check(self) -> None:
        """Reject bad values with a one-line error naming the field (before any work)."""
        check_count("k", self.k)
        check_count("candidates", self.candidates)
        check_count("rerank_depth", self.rerank_depth)
        if self.mode not in MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.fusion not in FUSIONS:
            raise InvalidInputError(
                f"fusion must be one of {', '.join(FUSIONS)}; got {self.fusion!r}"
            )
        _fraction("dense_weight", self.dense_weight)
        _fraction("diversity", self.diversity)
        # `filter` is checked by store.filters.parse_filter, which the engine calls next.


def check_count(name: str, value: Any) -> None:
    """A whole number from 1 to MAX_K, else a clear error."""
    if check_whole_number(name, value, 1) > MAX_K:
        raise LimitExceededError(f"{name} is {value}; the limit is {MAX_K:,}")


def _fraction(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{name} must be a number between 0 and 1, got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{name} must be between 0 and 1, got {value}")
