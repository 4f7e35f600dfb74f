"""Pool token vectors into one sentence vector, as sentence-transformers' Pooling module does."""

from __future__ import annotations

import numpy as np


def pool(token_vectors: np.ndarray, attention_mask: np.ndarray, mode: str) -> np.ndarray:
    """(batch, tokens, dim) + (batch, tokens) mask -> (batch, dim) float32."""
    mask = attention_mask[..., None].astype(np.float32)
    if mode == "mean":
        summed = (token_vectors * mask).sum(axis=1)
        return summed / np.clip(mask.sum(axis=1), 1e-9, None)
    if mode == "cls":
        return token_vectors[:, 0]
    if mode == "max":
        return np.where(mask > 0, token_vectors, -1e9).max(axis=1)
    raise ValueError(f"unknown pooling mode {mode!r}")


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
