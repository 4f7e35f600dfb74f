"""Checks on rows (text, id, metadata) before anything is encoded or written."""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Mapping
from typing import Any

from embedstack.errors import InvalidInputError


def check_whole_number(name: str, value: object, minimum: int = 0) -> int:
    """`value` as an int, or a one-line error naming the field (2.5, "5" and True are not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise InvalidInputError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


_SURROGATE = re.compile("[\ud800-\udfff]")  # only in a str from JSON escapes or surrogateescape


def is_utf8(text: str) -> bool:
    """False when `text` holds a surrogate code point, which UTF-8 (and SQLite) cannot store."""
    return not _SURROGATE.search(text)


def replace_surrogates(text: str) -> str:
    """Lone surrogates become U+FFFD and a pair its character; valid text is returned as is.

    A JSON escape such as "\\ud800", or a byte kept by surrogateescape, puts them in a str."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def check_text(text: str, where: str, error: type[InvalidInputError] = InvalidInputError) -> None:
    """Text that cannot be stored as UTF-8 (a lone surrogate, e.g. JSON's "\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(
            f"{where}: not valid Unicode text (a lone surrogate {text[exc.start]!r} at "
            f"character {exc.start})"
        ) from None


# Lists and objects inside metadata; JSON encoders (the HTTP answers' too) give up near 255
# levels, so a row stored deeper could never be read back.
MAX_METADATA_DEPTH = 64


def json_depth(value: Any) -> int:
    """Levels of lists and objects in a JSON value (a loop: no recursion limit to hit)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, Mapping | list):
            deepest = max(deepest, level)
            pending.extend(
                (child, level + 1)
                for child in (item.values() if isinstance(item, Mapping) else item)
            )
    return deepest


def validate_rows(texts: list, ids: list, metadata: list) -> None:
    """Check every row before anything is encoded or written."""
    seen: dict[str, int] = {}
    for position, (text, id_, meta) in enumerate(zip(texts, ids, metadata, strict=True)):
        if not isinstance(id_, str) or not id_:
            raise InvalidInputError(f"row {position}: id must be a non-empty string, got {id_!r}")
        check_text(id_, f"row {position}: id")
        if id_ in seen:
            raise InvalidInputError(f"duplicate id {id_!r} at rows {seen[id_]} and {position}")
        seen[id_] = position
        if not isinstance(text, str):
            raise InvalidInputError(f"row {position} (id {id_!r}): text is not a string")
        if not text.strip():
            raise InvalidInputError(f"row {position} (id {id_!r}): text is empty")
        check_text(text, f"row {position} (id {id_!r}): text")
        if not isinstance(meta, Mapping):
            raise InvalidInputError(f"row {position} (id {id_!r}): metadata must be a mapping")
        try:
            encoded = json.dumps(meta, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"row {position} (id {id_!r}): metadata is not JSON-serialisable: {exc}"
            ) from exc
        check_text(encoded, f"row {position} (id {id_!r}): metadata")
        if json_depth(meta) > MAX_METADATA_DEPTH:
            raise InvalidInputError(
                f"row {position} (id {id_!r}): metadata nests lists and objects more than "
                f"{MAX_METADATA_DEPTH} levels deep"
            )
        for key in meta:
            if not isinstance(key, str):
                raise InvalidInputError(
                    f"row {position} (id {id_!r}): metadata keys must be strings"
                )
