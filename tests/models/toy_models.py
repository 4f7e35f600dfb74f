"""Tiny but real models for tests of the model seam: they compute vectors, nothing is faked."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedstack.models.base import BaseEmbeddingModel
from embedstack.models.inputs import as_text_list


class HashingModel(BaseEmbeddingModel):
    """Signed feature hashing of lower-cased words into `dim` buckets, L2-normalised."""

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.backend, self.dim, self.max_tokens = name, "hashing", dim, 10_000

    def encode(self, texts: str | Sequence[str], batch_size=32, show_progress_bar=False):
        items, single = as_text_list(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for row, text in enumerate(items):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                out[row, h % self.dim] += 1.0 if h >> 63 else -1.0
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out[0] if single else out


class ByteHistogramModel(BaseEmbeddingModel):
    """An "image" model: the normalised histogram of a file's bytes (inputs are file paths)."""

    modality = "image"

    def __init__(self, name: str) -> None:
        self.name, self.backend, self.dim, self.max_tokens = name, "byte-histogram", 256, 0
        self.files_read = 0

    def encode(self, texts: str | Sequence[str], batch_size=32, show_progress_bar=False):
        paths, single = ([texts], True) if isinstance(texts, str) else (list(texts), False)
        out = np.zeros((len(paths), 256), dtype=np.float32)
        for row, path in enumerate(paths):
            self.files_read += 1
            data = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8)
            out[row] = np.bincount(data, minlength=256)
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out[0] if single else out
