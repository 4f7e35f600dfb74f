"""Evidence: the retrieved chunks' sentences that best answer a question, quoted exactly.

A 135M-parameter LLM cannot be trusted to read five chunks and pick the fact, but the
collection's own embedding model can rank their sentences against the question: that ranking is
the extractive answer, the short context the LLM writes from, and what a written answer is
checked against (`rag.attribution`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from embedstack.models.base import EmbeddingModel
from embedstack.sentences import sentence_spans
from embedstack.types import Hit

# Share of the question's content words a sentence (or its source's label: file name, page,
# heading) contains, added to its cosine similarity: table rows ("Total net sales $ 81,797 …")
# embed poorly but name what the question names, and "Q1 2023" is often only in the file name.
# Chosen on the SEC 10-Q questions (docs/benchmarks.md, "Evidence sentences").
LEXICAL_WEIGHT = 0.3
# Added when a sentence holds the kind of thing the question asks for (an amount for "how
# much", a date for "when", a name for "who"); SEC 10-Q: +1 to +4 points of gold numbers quoted.
ANSWER_TYPE_BONUS = 0.1
# Taken off a sentence cut by the chunk's edge ("when the checkpoint is missing, the"): it
# reads as noise when quoted, and the neighbouring chunk holds it whole.
FRAGMENT_PENALTY = 0.1
SENTENCE_CHARS = 600
# A line of fewer words and no figure is a heading or a label ("Other Legal Proceedings"): it
# matches a question's words well and answers nothing.
HEADING_WORDS = 5  # a longer "sentence" (a run-on table or list) is cut into pieces

_WORD = re.compile(r"[a-z][a-z0-9'&.-]*[a-z0-9]|[a-z]", re.IGNORECASE)
_NUMBER = re.compile(
    r"(?<![\w.])(?:[$€£]\s?)?\(?\d+(?:,\d{3})*(?:\.\d+)?\)?(?:\s?(?:%|percent\b|million\b|"
    r"billion\b|thousand\b))?"
)
_AMOUNT = re.compile(r"[$€£%.,]|\d{3}|percent|illion|thousand")  # not a list number or a note
_YEAR = re.compile(r"^(?:19|20)\d\d$")
_DATE = re.compile(
    r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?\s+\d{1,2},?\s+\d{4}\b"
    r"|\b(?:19|20)\d\d\b|\bQ[1-4]\b"
)
_NAME = re.compile(r"\b[A-Z][\w&-]*(?:\s+(?:of\s+|&\s+)?[A-Z][\w&-]*)*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|\n)$")
# Capitalised words that name no one: months, days, company suffixes.
NOT_NAMES = frozenset(
    """january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday inc corp corporation ltd llc co
    company""".split()  # noqa: SIM905
)
_ASKS_NUMBER = re.compile(
    r"\b(how (much|many|large|big|high|low)|what (is|was|were|are) the (total|amount|number|"
    r"value|percentage|rate|ratio|cost|price)|percent|percentage|rate|ratio|revenue|sales|"
    r"income|margin|cash|debt|expenses?|earnings|eps|growth|amount|total|sum)\b",
    re.IGNORECASE,
)
_ASKS_DATE = re.compile(r"\b(when|what (date|year|day|month|quarter)|which (year|date))\b", re.I)
_ASKS_NAME = re.compile(r"\b(who|whom|whose|which (company|companies|person|firm|country))\b", re.I)
STOPWORDS = frozenset(
    """a an and are as at be by did do does for from had has have how i in is it its of on or
    our that the their them they this those to was were what when where which who whom why
    will with you your about any can could should would there these than into over under
    between during also not been being more most other same such only own so very""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Evidence:
    """One sentence of a source chunk: `text == chunk.text[start:end]`, exactly as stored."""

    source: int  # the source's number in the answer ([n]), 1-based
    chunk_id: str
    start: int
    end: int
    text: str
    score: float
    highlights: list[tuple[int, int]] = field(default_factory=list)  # spans within `text`
    fragment: bool = False  # cut by the chunk's start or end

    def highlighted(self, mark: str = "**") -> str:
        """The text with what the question asks for wrapped in `mark`."""
        pieces, last = [], 0
        for start, end in self.highlights:
            pieces += [self.text[last:start], mark, self.text[start:end], mark]
            last = end
        return "".join([*pieces, self.text[last:]])


@dataclass(frozen=True)
class Sentences:
    """Every sentence of the sources, with its vector (rows line up with `units`)."""

    units: list[Evidence]
    vectors: np.ndarray

    def texts(self) -> list[str]:
        return [unit.text for unit in self.units]


def split_sources(hits: Sequence[Hit], model: EmbeddingModel) -> Sentences:
    """The sentences of `hits` (source n = hits[n-1]) embedded as documents."""
    units = []
    for number, hit in enumerate(hits, start=1):
        for start, end in _pieces(sentence_spans(hit.text)):
            text = hit.text[start:end]
            if len(text.split()) < HEADING_WORDS and not any(c.isdigit() for c in text):
                continue
            cut = (start == 0 and text[0].islower()) or (
                end == len(hit.text.rstrip()) and text[-1].isalpha() and len(text.split()) > 8
            )
            units.append(Evidence(number, hit.id, start, end, text, 0.0, fragment=cut))
    if not units:
        return Sentences([], np.zeros((0, model.dim), dtype=np.float32))
    vectors = model.encode_document([" ".join(u.text.split()) for u in units], batch_size=64)
    return Sentences(units, np.asarray(vectors, dtype=np.float32).reshape(len(units), -1))


def _pieces(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for start, end in spans:
        while end - start > SENTENCE_CHARS:
            out.append((start, start + SENTENCE_CHARS))
            start += SENTENCE_CHARS
        out.append((start, end))
    return out


def rank_evidence(
    question: str, sentences: Sentences, model: EmbeddingModel, labels: Sequence[str] = ()
) -> list[Evidence]:
    """The sentences, best first: cosine to the question + content-word overlap, each with the
    spans of what the question asks for (a number, a date, a name). `labels[n-1]` names
    source n (its file name and heading)."""
    if not sentences.units:
        return []
    query = np.asarray(model.encode_query([question]), dtype=np.float32).reshape(-1)
    cosine = sentences.vectors @ query
    wanted = content_words(question)
    label_words = [content_words(label) for label in labels]
    ranked = []
    for unit, similarity in zip(sentences.units, cosine, strict=True):
        words = content_words(unit.text)
        if unit.source <= len(label_words):
            words |= label_words[unit.source - 1]
        overlap = len(wanted & words) / len(wanted) if wanted else 0.0
        spans = highlight(question, unit.text)
        score = float(similarity) + LEXICAL_WEIGHT * overlap + ANSWER_TYPE_BONUS * bool(spans)
        score -= FRAGMENT_PENALTY * unit.fragment
        ranked.append(replace(unit, score=round(score, 4), highlights=spans))
    return sorted(ranked, key=lambda e: -e.score)


def content_words(text: str) -> set[str]:
    """Lower-cased words that carry meaning (no stop words), numbers without separators."""
    words = {w.lower().rstrip(".").removesuffix("'s") for w in _WORD.findall(text)}
    return {w for w in words if w not in STOPWORDS} | numbers(text)


def numbers(text: str) -> set[str]:
    """The numbers in `text`, normalised ("$ 81,797" and "81797" are one number)."""
    found = set()
    for match in re.finditer(r"\d[\d,]*(?:\.\d+)?", text):
        digits = match.group().rstrip(",").replace(",", "")
        found.add(digits.rstrip("0").rstrip(".") if "." in digits else digits)
    return found


def highlight(question: str, text: str) -> list[tuple[int, int]]:
    """Spans of `text` holding the kind of thing the question asks for and does not name."""
    asked = numbers(question)
    if _ASKS_DATE.search(question):
        pattern = _DATE
    elif _ASKS_NAME.search(question):
        pattern = _NAME
    elif _ASKS_NUMBER.search(question):
        pattern = _NUMBER
    else:
        return []
    spans = []
    for match in pattern.finditer(text):
        value = match.group().strip()
        if not value or (pattern is _NUMBER and (_YEAR.match(value) or not _AMOUNT.search(value))):
            continue
        if pattern is _NAME and not _is_name(text, match.start(), value, question):
            continue
        if pattern is not _NAME and numbers(value) and numbers(value) <= asked:
            continue  # the question's own figures (its year, its quarter) are not the answer
        start = match.start() + len(match.group()) - len(match.group().lstrip())
        spans.append((start, start + len(value)))
    return spans


def name_words(text: str, question: str = "") -> set[str]:
    """Lower-cased words of the names in `text` that the question does not name itself."""
    runs = [m[0] for m in _NAME.finditer(text) if _is_name(text, m.start(), m[0], question)]
    return {word.lower() for run in runs for word in run.split()} - NOT_NAMES - {"of", "&"}


def _is_name(text: str, start: int, value: str, question: str) -> bool:
    """A capitalised run that names someone or something the question does not: not a month,
    not one capitalised word opening a sentence ("She", "The")."""
    if value.lower() in question.lower() or value.lower() in NOT_NAMES:
        return False
    return " " in value or not _SENTENCE_START.search(text[:start])
