"""Rerankers: re-score a query's top candidates with a slower, more precise model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from embedstack.errors import InvalidInputError
from embedstack.models import EmbeddingModel


class Reranker(Protocol):
    name: str

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """One relevance score per text (higher is better)."""
        ...


def load_reranker(spec: str, model: EmbeddingModel) -> Reranker:
    """A reranker by name: "builtin" (no extra model) or a CrossEncoder folder."""
    from embedstack.search.cross_encoder import CrossEncoderReranker

    if spec == "builtin":
        raise InvalidInputError("no built-in reranker yet")
    if Path(spec).expanduser().is_dir():
        return CrossEncoderReranker(Path(spec).expanduser())
    raise InvalidInputError(
        f"unknown reranker {spec!r}: use 'builtin' or a sentence-transformers CrossEncoder folder"
    )
