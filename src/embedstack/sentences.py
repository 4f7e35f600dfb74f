"""Sentences with exact character offsets: what chunking splits on and what answers quote.

One definition for both, so that a quoted sentence is the same unit the chunker kept whole.
Written here (not nltk/pysbd) because callers need offsets into the stored text and the
splitting must treat PDF text as it comes out of the loaders: prose wrapped at a fixed line
width, where a line break is not a sentence end, next to table rows, where it is.
"""

from __future__ import annotations

import re

Span = tuple[int, int]

SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_LINE = re.compile(r"[^\n]+")
_NEW_ITEM = re.compile(r"\s*(?:[-*+•#>|]|\d+[.)]\s)")  # a list item, heading, quote or table row
_WORD = re.compile(r"\w+")
_MID_PHRASE = re.compile(r"[a-z,;(]")
_LOWER_START = re.compile(r"[a-z][a-z]")
WRAPPED_LINE = 0.7  # a line at least this share of the longest line's length was wrapped
MIN_WORDS = 3  # shorter pieces ("June 25,", "2023") are layout, not statements


def sentence_spans(text: str, min_words: int = MIN_WORDS) -> list[Span]:
    """(start, end) of each sentence in `text`, whitespace trimmed, in order.

    Sentences end at ., ! or ? before a capital or digit, and at a line break unless the line
    is as long as the text's wrapped lines (then the sentence goes on in the next line).
    Pieces of fewer than `min_words` words are left out.
    """
    lines = [(m.start(), m.end()) for m in _LINE.finditer(text)]
    widest = max((end - start for start, end in lines), default=0)
    pieces: list[Span] = []
    start = None
    followers: list[Span | None] = [*lines[1:], None] if lines else []
    for (line_start, line_end), following in zip(lines, followers, strict=True):
        start = line_start if start is None else start
        if not _continues(text, line_end, line_end - line_start, widest, following):
            pieces.append((start, line_end))
            start = None
    spans: list[Span] = []
    for piece_start, piece_end in pieces:
        cut = piece_start
        for match in SENTENCE_END.finditer(text, piece_start, piece_end):
            spans.append((cut, match.start()))
            cut = match.end()
        spans.append((cut, piece_end))
    return [span for span in map(lambda s: _trim(text, s), spans)
            if len(_WORD.findall(text[span[0]:span[1]])) >= min_words]  # fmt: skip


def _continues(text: str, end: int, width: int, widest: int, following: Span | None) -> bool:
    """Whether a line's sentence goes on in the next line, which follows a single line break
    and starts no new item: the line was wrapped (it is about as wide as the widest), or it
    stops mid-phrase and the next line goes on in lower case (a short line of hard-wrapped
    prose, whose next word was too long to fit)."""
    if following is None or text[following[0] - 2 : following[0]].count("\n") != 1:
        return False
    if _NEW_ITEM.match(text, following[0]):
        return False
    return width >= WRAPPED_LINE * widest or bool(
        _MID_PHRASE.search(text, end - 1, end) and _LOWER_START.match(text, following[0])
    )


def _trim(text: str, span: Span) -> Span:
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
