"""Answers, their sentences (each checked against the sources) and their citations."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any

from embedstack.html_tables import Html, format_number, html_table
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

    def _repr_html_(self) -> str:
        """The answer as a notebook shows it: what a reader needs to trust it or not."""
        return answer_html(self)


def answer_html(answer: Answer) -> Html:
    """Question, answer (unsupported sentences marked), fallback note, sources, evidence."""
    how = answer.mode + (f" · {answer.llm}" if answer.llm else "")
    how += f" · {format_number(answer.seconds, 2)} s"
    parts = [
        f"<p><b>Q:</b> {html.escape(answer.question)}</p>",
        f"<p>{sentences_html(answer)}</p>",
        f'<p style="color: gray">{html.escape(how)}</p>',
    ]
    if answer.fallback:
        parts.append(f"<p><i>Fallback: {html.escape(answer.fallback)}</i></p>")
    if answer.sources or answer.citations:
        parts.append(sources_table(answer))
    if answer.evidence:
        rows = [(e.source, e.score, evidence_html(e)) for e in answer.evidence]
        parts.append(html_table(rows, ("source", "score", "sentence"), caption="Evidence"))
    return Html('<div class="embedstack-answer">\n' + "\n".join(parts) + "\n</div>")


def sentences_html(answer: Answer) -> str:
    """The answer text; each unsupported sentence struck through in red, with the reason."""
    if not answer.sentences:
        return html.escape(answer.text)
    pieces = []
    for sentence in answer.sentences:
        text = html.escape(marked(sentence.text, sentence.sources))
        if not sentence.supported:
            why = html.escape(f"unsupported: {sentence.reason or 'no source says this'}")
            text = f'<s style="color: #b00" title="{why}">{text}</s> <small>({why})</small>'
        pieces.append(text)
    return " ".join(pieces)


def sources_table(answer: Answer) -> Html:
    """Every source the answer drew on, the ones its text cites marked."""
    cited = {c.number for c in answer.citations}
    rows = [(c.number, "✓" if c.number in cited else "", c.label, c.quote)
            for c in answer.sources or answer.citations]  # fmt: skip
    return html_table(rows, ("n", "cited", "source", "quote"), caption="Sources")


def evidence_html(evidence: Evidence) -> Html:
    """The sentence, escaped, with what the question asks for in <mark>."""
    text, pieces, last = evidence.text, [], 0
    for start, end in evidence.highlights:
        pieces += [html.escape(text[last:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        last = end
    return Html("".join([*pieces, html.escape(text[last:])]))


def marked(text: str, sources: list[int]) -> str:
    """'Sales rose 8% [1, 3].' — the markers before the sentence's closing punctuation."""
    if not sources:
        return text
    body = text.rstrip(".!?;:")
    return f"{body} [{', '.join(map(str, sources))}]{text[len(body):]}"
