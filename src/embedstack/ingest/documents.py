"""What loaders produce: a cleaned document text and the spans of its blocks.

Loaders emit `Block`s (a paragraph, heading, table or list item with its page and heading path;
a transcribed speech segment with its time in the recording).
`Document.from_blocks` cleans each block and joins them, recording where each block landed, so
every chunk can point back to character offsets, a page and a heading path in the cleaned text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedstack.ingest.cleaning import clean_text, replace_surrogates, scrub

BLOCK_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Block:
    """One structural unit as the parser saw it, before cleaning."""

    text: str
    page: int | None = None  # 1-based, PDFs only
    heading_path: tuple[str, ...] = ()  # enclosing headings, outermost first (itself included)
    kind: str = "paragraph"  # paragraph | heading | table | code | speech
    time_start: float | None = None  # seconds from the start of a recording (audio only)
    time_end: float | None = None


@dataclass(frozen=True)
class BlockSpan:
    """Where a cleaned block sits in `Document.text`."""

    start: int
    end: int
    page: int | None
    heading_path: tuple[str, ...]
    kind: str
    time_start: float | None = None
    time_end: float | None = None


@dataclass
class Document:
    """A cleaned text with block spans; one per file, or one per row of a CSV/JSONL file."""

    source: Path
    format: str
    text: str
    spans: list[BlockSpan]
    title: str = ""
    record: int | None = None  # row number (1-based) in a CSV/JSONL file
    metadata: dict[str, Any] = field(default_factory=dict)  # other columns/fields of that row

    @classmethod
    def from_blocks(
        cls, source: Path, format: str, blocks: Iterable[Block], **extra: Any
    ) -> Document:
        """Clean and join the blocks; title, heading paths and metadata are made storable too
        (a lone surrogate from a JSON escape would otherwise fail the write, not the file)."""
        parts: list[str] = []
        spans: list[BlockSpan] = []
        offset = 0
        for block in blocks:
            text = clean_text(block.text)
            if not text:
                continue
            if parts:
                parts.append(BLOCK_SEPARATOR)
                offset += len(BLOCK_SEPARATOR)
            parts.append(text)
            headings = tuple(map(replace_surrogates, block.heading_path))
            span = BlockSpan(offset, offset + len(text), block.page, headings, block.kind,
                             block.time_start, block.time_end)  # fmt: skip
            spans.append(span)
            offset += len(text)
        return cls(source, format, "".join(parts), spans, **scrub(extra))

    def span_at(self, offset: int) -> BlockSpan:
        """The block containing a character offset (or the nearest one before it)."""
        low, high = 0, len(self.spans) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if self.spans[middle].start <= offset:
                low = middle
            else:
                high = middle - 1
        return self.spans[low]
