"""The `model2vec` backend: a static token lookup table, mean-pooled; no transformer at run time.

A catalog entry whose weights are "distill:<catalog model>" is distilled from that transformer
on first load (see static_distill); this backend, not the catalog, resolves that, so the
catalog never depends on the code that loads models.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedstack.models.base import TOKENIZER, BaseEmbeddingModel
from embedstack.models.catalog import ModelSpec, find_spec
from embedstack.models.inputs import as_text_list
from embedstack.models.static_distill import distilled_folder
from embedstack.models.transformer_backend import from_spec as transformer_from_spec


class StaticEncoder(BaseEmbeddingModel):
    """A Model2Vec static model: a token lookup table, mean-pooled; no transformer at run time."""

    def __init__(self, name: str, folder: Path, max_tokens: int = 512) -> None:
        from model2vec import StaticModel  # the catalog checks it is installed

        self._model = StaticModel.from_pretrained(str(folder), normalize=True)
        self.name, self.backend = name, "model2vec"
        self.dim, self.max_tokens = int(self._model.dim), max_tokens
        self._tokenizer_file = Path(folder) / "tokenizer.json"
        if self._tokenizer_file.is_file():
            self.capabilities = frozenset({TOKENIZER})

    @property
    def tokenizer_file(self) -> Path:
        return self._tokenizer_file

    def __repr__(self) -> str:
        return f"StaticEncoder(name={self.name!r}, dim={self.dim})"

    def encode(
        self, texts: str | Sequence[str], batch_size: int = 1024, show_progress_bar: bool = False
    ) -> np.ndarray:
        items, single = as_text_list(texts)
        vectors = np.asarray(
            self._model.encode(items, max_length=self.max_tokens, batch_size=max(batch_size, 1024)),
            dtype=np.float32,
        ).reshape(len(items), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.clip(norms, 1e-12, None)
        return vectors[0] if single else vectors


def from_spec(spec: ModelSpec, backend: str) -> StaticEncoder:
    return StaticEncoder(spec.name, weights_folder(spec), spec.max_tokens)


def weights_folder(spec: ModelSpec) -> Path:
    """The Model2Vec folder: distilled (once) for "distill:" entries, else the package's."""
    kind, _, base_name = spec.weights.partition(":")
    if kind != "distill":
        return spec.locate()
    base = find_spec(base_name)
    return distilled_folder(
        spec.name, base.name, lambda: transformer_from_spec(base, "onnx"), pca_dims=spec.dim
    )
