"""Checks shared by the analysis estimators: one clear error for each way vectors can be bad."""

from __future__ import annotations

from typing import Any

import numpy as np

from embedstack.errors import InvalidInputError


def as_unit_rows(vectors: Any, *, what: str = "vectors", min_rows: int = 1) -> np.ndarray:
    """`vectors` as a float32 2-D array of unit rows (cosine geometry), or a clear error."""
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be a 2-D array of numbers: {exc}") from exc
    if array.ndim != 2:
        raise InvalidInputError(f"{what} must be 2-D (rows × dimensions), got shape {array.shape}")
    if array.shape[0] < min_rows:
        raise InvalidInputError(f"need at least {min_rows} {what}, got {array.shape[0]}")
    if array.shape[1] < 1:
        raise InvalidInputError(f"{what} have no dimensions")
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{what} contain NaN or infinite values")
    norms = np.linalg.norm(array.astype(np.float64), axis=1, keepdims=True)  # no overflow
    if (norms == 0).any():
        raise InvalidInputError(f"{what} must not contain all-zero rows")
    return np.ascontiguousarray(array / norms, dtype=np.float32)
