"""The input contract every model shares: one text or a sequence of texts, all strings."""

from __future__ import annotations

from collections.abc import Sequence

from embedstack.errors import InvalidInputError


def as_text_list(texts: str | Sequence[str], allow_empty: bool = True) -> tuple[list[str], bool]:
    """(list of texts, whether a single string was given); a non-string is a clear error."""
    single = isinstance(texts, str)
    items = [texts] if single else list(texts)
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"text at position {position} is {type(text).__name__}, not str"
            )
        if not allow_empty and not text:
            raise InvalidInputError(f"text at position {position} is empty")
    return items, single
