"""Lookups over a matrix of word vectors, shared by GloVe and the vectors you train yourself.

A sentence is the normalised mean of its words' unit vectors; `most_similar` and `analogy`
rank every word by cosine, as gensim does. Subclasses only say where the words and vectors
come from, how text is cut into words, and (FastText) how to build a vector for an unseen word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from embedstack.errors import InvalidInputError
from embedstack.models.base import WORD_VECTORS, BaseEmbeddingModel
from embedstack.models.inputs import as_text_list

WORD = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)  # GloVe 6B's tokens: words and punctuation


class WordLookup(BaseEmbeddingModel):
    """Unit word vectors by word, in the vocabulary's order (most frequent first)."""

    capabilities = frozenset({WORD_VECTORS})

    def __init__(
        self, name: str, words: list[str], vectors: np.ndarray, pattern: re.Pattern[str] = WORD
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        self._unit = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        self.words = words
        self._index = {word: i for i, word in enumerate(words)}
        self._pattern = pattern
        self.name, self.backend = name, "static"
        self.dim, self.max_tokens = vectors.shape[1], 1_000_000

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, words={len(self.words)}, dim={self.dim})"

    @property
    def unit_vectors(self) -> np.ndarray:
        """The (words, dim) matrix of unit vectors, row i for `words[i]` (read-only use)."""
        return self._unit

    def __contains__(self, word: str) -> bool:
        return word.lower() in self._index

    def tokens(self, text: str) -> list[str]:
        """The words of `text` as the vocabulary spells them (lower-cased)."""
        return self._pattern.findall(text.lower())

    def unseen_vector(self, word: str) -> np.ndarray | None:
        """A unit vector for a word outside the vocabulary, where the model can build one."""
        return None

    def vector(self, word: str) -> np.ndarray:
        index = self._index.get(word.lower())
        if index is not None:
            return self._unit[index]
        unseen = self.unseen_vector(word.lower())
        if unseen is None:
            raise InvalidInputError(f"{word!r} is not in {self.name}'s vocabulary")
        return unseen

    def encode(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        """Mean of the words' unit vectors, normalised; text with no known word gives zeros."""
        items, single = as_text_list(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for row, text in enumerate(items):
            rows: list[np.ndarray] = []
            for word in self.tokens(text):
                index = self._index.get(word)
                vector = self._unit[index] if index is not None else self.unseen_vector(word)
                if vector is not None:
                    rows.append(vector)
            if rows:
                mean = np.mean(rows, axis=0)
                out[row] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return out[0] if single else out

    def most_similar(
        self,
        positive: str | Sequence[str],
        negative: Sequence[str] = (),
        k: int = 10,
        *,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """Nearest words to sum(positive) - sum(negative), inputs excluded (as gensim does).

        `restrict_vocab`: rank only the first (most frequent) N words, as gensim's option does.
        """
        positive = [positive] if isinstance(positive, str) else list(positive)
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        if restrict_vocab is not None and restrict_vocab < 1:
            raise InvalidInputError(f"restrict_vocab must be at least 1, got {restrict_vocab}")
        target = sum(self.vector(w) for w in positive) - sum(
            (self.vector(w) for w in negative), np.zeros(self.dim, dtype=np.float32)
        )
        target = target / max(float(np.linalg.norm(target)), 1e-12)
        unit = self._unit if restrict_vocab is None else self._unit[:restrict_vocab]
        scores = unit @ target
        lowered = (w.lower() for w in [*positive, *negative])
        exclude = [i for w in lowered if (i := self._index.get(w, len(scores))) < len(scores)]
        scores[exclude] = -np.inf  # inputs are never answers; unseen words have no row
        wanted = min(k, len(scores) - len(set(exclude)))
        if wanted <= 0:
            return []
        if wanted == 1:
            ranked = np.array([int(np.argmax(scores))])
        else:
            ranked = np.argpartition(-scores, wanted - 1)[:wanted]
            ranked = ranked[np.argsort(-scores[ranked], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in ranked]

    def analogy(
        self, a: str, b: str, c: str, k: int = 1, *, restrict_vocab: int | None = None
    ) -> list[tuple[str, float]]:
        """a is to b as c is to ?  (man : king = woman : queen)"""
        return self.most_similar([b, c], [a], k=k, restrict_vocab=restrict_vocab)
