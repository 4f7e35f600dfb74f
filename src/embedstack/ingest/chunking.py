"""Token-aware chunking: split on headings, then paragraphs, sentences, lines, then tokens.

Written here rather than taken from LangChain/LlamaIndex splitters because chunks must keep exact
character offsets, page numbers and heading paths, and be measured in the embedding model's own
tokens; those splitters either measure characters or lose the offsets.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from embedstack.errors import InvalidInputError
from embedstack.ingest.documents import BLOCK_SEPARATOR, Document
from embedstack.ingest.tokens import TokenCounter
from embedstack.sentences import SENTENCE_END

Span = tuple[int, int]
_LINE_BREAK = re.compile(r"\n")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class TextChunk:
    """A piece of a document to embed: its span, where it came from, its token count."""

    start: int
    end: int
    text: str
    tokens: int
    page: int | None
    page_end: int | None
    heading_path: tuple[str, ...]
    time_start: float | None = None  # seconds into a recording: its first segment's start
    time_end: float | None = None  # and its last segment's end (audio only)


class Chunker:
    """`split(document)` -> chunks of at most `max_tokens` tokens, `overlap` tokens shared."""

    def __init__(self, counter: TokenCounter, max_tokens: int, overlap: int = 0) -> None:
        if max_tokens < 8:
            raise InvalidInputError(f"chunk size must be at least 8 tokens, got {max_tokens}")
        if not 0 <= overlap < max_tokens // 2:
            raise InvalidInputError(
                f"overlap must be between 0 and half the chunk size ({max_tokens // 2}), "
                f"got {overlap}"
            )
        self.counter = counter
        self.max_tokens = max_tokens
        self.overlap = overlap
        self._splitters: list[Callable[[str, int, int], list[Span]]] = [
            _splitter(re.compile(re.escape(BLOCK_SEPARATOR))),
            _splitter(SENTENCE_END),
            _splitter(_LINE_BREAK),
            _splitter(_WHITESPACE),
        ]

    def split(self, document: Document) -> list[TextChunk]:
        chunks: list[TextChunk] = []
        for section in _sections(document):
            units = self._units(document.text, [section], level=0)
            chunks.extend(self._pack(document, units))
        return self._enforce_limit(document, chunks)

    # ---- splitting into units that fit ---------------------------------------------------------

    def _units(self, text: str, spans: list[Span], level: int) -> list[tuple[int, int, int]]:
        """(start, end, tokens) pieces in order, each within the budget."""
        counts = self.counter.count([text[s:e] for s, e in spans])
        units = []
        for (start, end), tokens in zip(spans, counts, strict=True):
            if tokens <= self.max_tokens:
                if tokens:
                    units.append((start, end, tokens))
                continue
            pieces = self._finer_pieces(text, start, end, level)
            if pieces is None:  # no separator left: cut by tokens
                units.extend(self._token_windows(text, start, end))
            else:
                units.extend(self._units(text, pieces[0], pieces[1]))
        return units

    def _finer_pieces(
        self, text: str, start: int, end: int, level: int
    ) -> tuple[list[Span], int] | None:
        for next_level in range(level, len(self._splitters)):
            pieces = self._splitters[next_level](text, start, end)
            if len(pieces) > 1:
                return pieces, next_level + 1
        return None

    def _token_windows(self, text: str, start: int, end: int) -> list[tuple[int, int, int]]:
        spans = self.counter.windows(text[start:end], self.max_tokens, 0)
        pieces = [(start + s, start + e) for s, e in spans]
        return [(s, e, n) for (s, e), n in zip(pieces, self.counter.count(
            [text[s:e] for s, e in pieces]), strict=True)]  # fmt: skip

    # ---- packing units into chunks ----------------------------------------------------------

    def _pack(self, document: Document, units: list[tuple[int, int, int]]) -> list[TextChunk]:
        chunks: list[TextChunk] = []
        current: list[tuple[int, int, int]] = []
        total = 0
        for unit in units:
            if current and total + unit[2] > self.max_tokens:
                chunks.append(self._chunk(document, current))
                current = self._overlap_tail(current, room=self.max_tokens - unit[2])
                total = sum(u[2] for u in current)
            current.append(unit)
            total += unit[2]
        if current:
            chunks.append(self._chunk(document, current))
        return chunks

    def _overlap_tail(
        self, units: list[tuple[int, int, int]], room: int
    ) -> list[tuple[int, int, int]]:
        """The last units of the previous chunk, up to `overlap` tokens, to repeat at the start."""
        tail: list[tuple[int, int, int]] = []
        total = 0
        for unit in reversed(units):
            if total + unit[2] > min(self.overlap, room):
                break
            tail.insert(0, unit)
            total += unit[2]
        return tail

    def _chunk(self, document: Document, units: list[tuple[int, int, int]]) -> TextChunk:
        start, end = units[0][0], units[-1][1]
        first, last = document.span_at(start), document.span_at(end - 1)
        return TextChunk(
            start=start,
            end=end,
            text=document.text[start:end],
            tokens=sum(u[2] for u in units),
            page=first.page,
            page_end=last.page,
            heading_path=last.heading_path,  # the deepest: a leading bare heading is its parent
            time_start=first.time_start,
            time_end=last.time_end,
        )

    def _enforce_limit(self, document: Document, chunks: list[TextChunk]) -> list[TextChunk]:
        """Recount joined chunks (joins can merge tokens); split any that ended up too long."""
        counts = self.counter.count([chunk.text for chunk in chunks])
        checked = []
        for chunk, tokens in zip(chunks, counts, strict=True):
            if tokens <= self.max_tokens:
                checked.append(_with_tokens(chunk, tokens))
                continue
            for start, end, n in self._token_windows(document.text, chunk.start, chunk.end):
                checked.append(self._chunk(document, [(start, end, n)]))
        return checked


def _with_tokens(chunk: TextChunk, tokens: int) -> TextChunk:
    return dataclasses.replace(chunk, tokens=tokens)


def _sections(document: Document) -> list[Span]:
    """Runs of blocks under the same heading path: chunks never straddle a heading."""
    sections: list[Span] = []
    previous = None
    for span in document.spans:
        same = previous is not None and previous.heading_path == span.heading_path
        bare_heading = (
            previous is not None
            and previous.kind == "heading"
            and (
                sections[-1][0] == previous.start  # the last section is just that heading
            )
        )
        if (same and span.kind != "heading") or bare_heading:
            sections[-1] = (sections[-1][0], span.end)
        else:
            sections.append((span.start, span.end))
        previous = span
    return sections


def _splitter(pattern: re.Pattern[str]) -> Callable[[str, int, int], list[Span]]:
    """Split text[start:end] at a separator pattern into trimmed, non-empty spans."""

    def split(text: str, start: int, end: int) -> list[Span]:
        spans = []
        piece_start = start
        for match in pattern.finditer(text, start, end):
            spans.append((piece_start, match.start()))
            piece_start = match.end()
        spans.append((piece_start, end))
        return [trimmed for s, e in spans if (trimmed := _trim(text, s, e))]

    return split


def _trim(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None
