"""Text cleaning: Unicode and whitespace normalisation, de-hyphenation, running headers.

Plain regular expressions: the rules are few and they must keep text offsets predictable, which
general-purpose cleaners (ftfy, clean-text) do not promise.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

from embedstack.rows import replace_surrogates

# Soft hyphen, zero-width characters and BOM vanish; other control characters become spaces.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_HYPHENATED_BREAK = re.compile(r"(?<=[^\W\d_])-[ \t]*\n[ \t]*(?=[a-z])")
_SPACES = re.compile(r"[^\S\n]+")  # whitespace other than newlines
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(r"^(?:page\s+)?\d+\s*[|·–—-]?\s*|\s*[|·–—-]?\s*(?:page\s+)?\d+$", re.I)

EDGE_LINES = 3  # running headers/footers are looked for among a page's first and last lines
MIN_PAGES_FOR_RUNNING_LINES = 3
NOT_TITLES = {"table of contents", "contents", "confidential", "draft", "page"}


def scrub(value: Any) -> Any:
    """`replace_surrogates` on every string in a metadata value (keys, lists, nested dicts)."""
    if isinstance(value, str):
        return replace_surrogates(value)
    if isinstance(value, dict):
        return {scrub(key): scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(item) for item in value)
    return value


def clean_text(text: str) -> str:
    """NFKC, no invisible or control characters, joined hyphenated line breaks, tidy spaces;
    lone surrogates become U+FFFD."""
    text = replace_surrogates(text.replace("\r\n", "\n").replace("\r", "\n"))
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text.translate(_INVISIBLE))
    text = _HYPHENATED_BREAK.sub("", text)  # "infor-\nmation" -> "information"
    text = _SPACES.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def _line_key(line: str) -> str:
    """Page numbers differ from page to page; compare running lines with digits masked."""
    return _DIGITS.sub("#", " ".join(line.split()).lower())


def running_lines(pages: list[str]) -> set[str]:
    """Keys of lines that recur at the top or bottom of at least half the pages (min. 3)."""
    if len(pages) < MIN_PAGES_FOR_RUNNING_LINES:
        return set()
    counts: Counter[str] = Counter()
    for page in pages:
        lines = [line for line in page.splitlines() if line.strip()]
        edges = lines[:EDGE_LINES] + lines[-EDGE_LINES:]
        counts.update({_line_key(line) for line in edges})
    threshold = max(MIN_PAGES_FOR_RUNNING_LINES, len(pages) / 2)
    return {key for key, count in counts.items() if count >= threshold and key.strip("# ")}


def strip_running_lines(page: str, keys: set[str]) -> str:
    """Drop recurring header/footer lines from the top and bottom edges of one page."""
    lines = page.splitlines()
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    edges = set(nonblank[:EDGE_LINES] + nonblank[-EDGE_LINES:])
    return "\n".join(
        line for i, line in enumerate(lines) if not (i in edges and _line_key(line) in keys)
    )


def most_common_running_line(pages: list[str], keys: set[str]) -> str:
    """The running header/footer text itself (e.g. "Apple Inc. | Q3 2023 Form 10-Q"), if any."""
    counts: Counter[str] = Counter()
    for page in pages:
        for line in page.splitlines():
            if _line_key(line) in keys:
                counts[_PAGE_NUMBER.sub("", line.strip())] += 1
    best = [
        line
        for line, _ in counts.most_common()
        if len(line.split()) >= 2 and line.lower() not in NOT_TITLES
    ]
    return " ".join(best[0].split()) if best else ""
