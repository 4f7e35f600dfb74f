"""Answers and their citations: keep the ones that point at prompt sources, drop the rest."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from embedstack.rag.prompt import source_label
from embedstack.types import Hit

_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
QUOTE_CHARS = 300


@dataclass(frozen=True)
class Citation:
    number: int
    chunk_id: str
    source: str
    page: int | None
    heading: str | None
    quote: str  # the start of the cited chunk's text
    label: str

    @classmethod
    def from_hit(cls, number: int, hit: Hit) -> Citation:
        meta = hit.metadata
        quote = hit.text if len(hit.text) <= QUOTE_CHARS else hit.text[: QUOTE_CHARS - 1] + "…"
        return cls(number, hit.id, str(meta.get("source", hit.id)), meta.get("page"),
                   meta.get("heading"), quote, source_label(hit))  # fmt: skip


@dataclass
class Answer:
    """The answer text with [n] markers, the citations they map to, and how it was reached."""

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    sources: list[Citation] = field(default_factory=list)  # every chunk the prompt held
    grounded: bool = True  # False: retrieval found nothing relevant; no LLM was called
    search_query: str = ""  # the question as rewritten with the conversation, if it was
    dropped_citations: list[int] = field(default_factory=list)  # invented numbers removed
    raw_text: str = ""  # what the LLM said, before invented citations were removed
    llm: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_citations(raw: str, sources: list[Hit]) -> tuple[str, list[Citation], list[int]]:
    """(text without invented citations, citations in order of first use, invented numbers)."""
    valid = range(1, len(sources) + 1)
    used: list[int] = []
    invented: list[int] = []

    def keep(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*[,;]\s*", match.group(1))]
        good = [n for n in numbers if n in valid]
        invented.extend(n for n in numbers if n not in valid and n not in invented)
        used.extend(n for n in good if n not in used)
        return f"[{', '.join(map(str, good))}]" if good else ""

    text = _CITATION.sub(keep, raw)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()
    citations = [Citation.from_hit(n, sources[n - 1]) for n in used]
    return text, citations, invented
