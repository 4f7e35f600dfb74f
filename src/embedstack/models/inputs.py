"""The input contract every model shares: one text or a sequence of texts, all strings."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from embedstack.errors import InvalidInputError
from embedstack.progress import progress_bar
from embedstack.rows import replace_surrogates


def as_text_list(texts: str | Sequence[str], allow_empty: bool = True) -> tuple[list[str], bool]:
    """(list of texts, whether a single string was given); a non-string is a clear error.

    Lone surrogates (JSON allows "\\ud800") become U+FFFD: tokenizers reject them outright.
    """
    single = isinstance(texts, str)
    items: list[str] = [texts] if isinstance(texts, str) else list(texts)
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"text at position {position} is {type(text).__name__}, not str"
            )
        if not allow_empty and not text:
            raise InvalidInputError(f"text at position {position} is empty")
        items[position] = replace_surrogates(text)
    return items, single


def encode_in_batches(
    items: list[str],
    dim: int,
    run: Callable[[list[str]], np.ndarray],
    batch_size: int,
    description: str,
    show_progress_bar: bool,
) -> np.ndarray:
    """Fill an (n, dim) array batch by batch with `run`, drawing a progress bar if asked."""
    out = np.empty((len(items), dim), dtype=np.float32)
    with progress_bar(len(items), description, enabled=show_progress_bar, unit="texts") as advance:
        for start in range(0, len(items), batch_size):
            part = items[start : start + batch_size]
            out[start : start + len(part)] = run(part)
            advance(len(part))
    return out
