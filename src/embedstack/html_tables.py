"""HTML tables for notebooks: search hits, answers and evaluation reports as Jupyter shows them.

Standard library only and no embedstack imports (the lowest layer), so every record type can
use it. Every cell is escaped: a stored text is data, and a `<script>` in it must not run in
the reader's notebook. Markup built on purpose is passed as `Html`, which is kept as it is.
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

FLOAT_DIGITS = 4
TEXT_CHARS = 300  # a hit's text is cut to this in a table: a chunk can be pages long
HIT_COLUMNS = ("id", "score", "text", "metadata")
LEFT = "text-align: left"


class Html(str):
    """Trusted markup: a str that Jupyter renders as HTML and `html_table` does not escape."""

    def _repr_html_(self) -> str:
        return str(self)


class HitLike(Protocol):
    """What a table needs of a search hit (`embedstack.Hit`; typed here without importing it)."""

    @property
    def id(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def text(self) -> str: ...

    @property
    def metadata(self) -> Mapping[str, Any]: ...


def shorten(text: str, chars: int = TEXT_CHARS) -> str:
    """`text` cut to `chars` characters, the last one an ellipsis when anything was cut."""
    return text if len(text) <= chars else text[: max(chars - 1, 0)] + "…"


def format_number(value: float | numbers.Real, digits: int = FLOAT_DIGITS) -> str:
    """Floats to `digits` decimals; a tiny non-zero value in scientific form, not as 0.0000."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 10**-digits:
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}"


def format_value(value: Any, digits: int = FLOAT_DIGITS) -> str:
    """Plain text of one cell: numbers rounded, lists and mappings flattened, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, numbers.Real):
        return format_number(value, digits)
    if isinstance(value, Mapping):
        return "; ".join(f"{key}: {format_value(item, digits)}" for key, item in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(format_value(item, digits) for item in value)
    return str(value)


def cell(value: Any, digits: int = FLOAT_DIGITS) -> str:
    """One escaped cell; numbers right-aligned, text left-aligned (Jupyter aligns all right)."""
    content = value if isinstance(value, Html) else html.escape(format_value(value, digits))
    numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return f'<td style="text-align: {"right" if numeric else "left"}">{content}</td>'


def html_table(
    rows: Iterable[Mapping[str, Any] | Sequence[Any]],
    columns: Sequence[str] | None = None,
    *,
    caption: str | None = None,
    digits: int = FLOAT_DIGITS,
) -> Html:
    """A `<table>` of `rows`: dicts (columns default to their keys, in first-seen order) or
    tuples (a header only when `columns` is given). Every cell is escaped unless it is `Html`."""
    rows = list(rows)
    if columns is None:
        keys = [key for row in rows if isinstance(row, Mapping) for key in row]
        columns = list(dict.fromkeys(keys)) or None
    parts = ['<table class="embedstack">']
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    if columns:
        header = "".join(f'<th style="{LEFT}">{html.escape(str(c))}</th>' for c in columns)
        parts.append(f"<thead><tr>{header}</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        values = [row.get(c) for c in columns or ()] if isinstance(row, Mapping) else list(row)
        parts.append("<tr>" + "".join(cell(v, digits) for v in values) + "</tr>")
    parts.append("</tbody></table>")
    return Html("\n".join(parts))


def hit_row(hit: HitLike, text_chars: int = TEXT_CHARS) -> dict[str, Any]:
    """One hit as a table row: its text shortened, its metadata kept whole."""
    return {"id": hit.id, "score": hit.score, "text": shorten(hit.text, text_chars),
            "metadata": dict(hit.metadata)}  # fmt: skip


def hits_table(
    hits: Iterable[HitLike],
    *,
    caption: str | None = None,
    text_chars: int = TEXT_CHARS,
    digits: int = FLOAT_DIGITS,
) -> Html:
    """Search results as a ranked table: `hits_table(kb.search("…"))` is shown as HTML in a
    notebook. A function rather than a list subclass, so `search` still returns `list[Hit]`."""
    rows = [{"#": rank, **hit_row(hit, text_chars)} for rank, hit in enumerate(hits, start=1)]
    return html_table(rows, ("#", *HIT_COLUMNS), caption=caption, digits=digits)
