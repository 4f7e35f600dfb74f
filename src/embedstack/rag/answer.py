"""Answers, their sentences (each checked against the sources) and their citations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from embedstack.rag.attribution import AnswerSentence
from embedstack.rag.evidence import Evidence
from embedstack.rag.prompt import source_label
from embedstack.types import Hit

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
    """The answer text with verified [n] markers, its sentences as checked, the evidence
    sentences of the sources, and how it was reached."""

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)  # cited in the text, first use first
    sources: list[Citation] = field(default_factory=list)  # every chunk the answer drew on
    grounded: bool = True  # False: retrieval found nothing relevant; no LLM was called
    search_query: str = ""  # the question as rewritten with the conversation, if it was
    dropped_citations: list[int] = field(default_factory=list)  # written [n] that did not check
    raw_text: str = ""  # what the LLM said, before its citations were checked
    llm: str = ""
    seconds: float = 0.0
    mode: str = "extractive"  # how the text was made: "extractive" (quoted) or "generative"
    sentences: list[AnswerSentence] = field(default_factory=list)  # the text's, each checked
    evidence: list[Evidence] = field(default_factory=list)  # the sources' best sentences
    fallback: str = ""  # why an "auto" answer quotes the sources instead of the LLM

    @property
    def unsupported(self) -> list[str]:
        """Sentences of the answer that no source sentence supports."""
        return [sentence.text for sentence in self.sentences if not sentence.supported]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "unsupported": self.unsupported}


def marked(text: str, sources: list[int]) -> str:
    """'Sales rose 8% [1, 3].' — the markers before the sentence's closing punctuation."""
    if not sources:
        return text
    body = text.rstrip(".!?;:")
    return f"{body} [{', '.join(map(str, sources))}]{text[len(body):]}"
