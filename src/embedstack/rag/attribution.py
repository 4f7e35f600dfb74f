"""Verified citations: each sentence of a written answer is matched to the source sentences
that support it, or marked unsupported.

Support is the collection's embedding model's cosine between the answer sentence and a source
sentence, plus two checks an embedding cannot make: every number in the answer sentence must
be in the sources, and so must every name (a capitalised word that is not in the question).
A 135M model that writes "$1.1 trillion" where the filing says "$81,797 million" is caught by
the second, not the first. Last, a sentence must not contradict its own figures ("2.1%, which
is higher than the 21% statutory rate"): each number can be in the sources and the claim false.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from embedstack.models.base import EmbeddingModel
from embedstack.rag.evidence import Sentences, content_words, name_words, numbers
from embedstack.sentences import sentence_spans

# Cosine between an answer sentence and its best source sentence at or above which the answer
# sentence counts as supported (all-MiniLM-L6-v2; calibrated on the SEC 10-Q gold answers against
# the sources of other questions: bench/attribution_threshold.py, docs/benchmarks.md). Every
# number in the sentence must also be in the sources, and every name.
SUPPORT_THRESHOLD = 0.65
# A sentence whose numbers are all found in the sources has an anchor an embedding lacks, and
# paraphrases of table rows score low ("sales were $82,959 million" against "Total net sales
# $ 82,959 $ 81,434 2 %"): it needs only this much.
NUMBER_SUPPORT_THRESHOLD = 0.45
# With no number to go by, source sentences this close to the best one are cited too.
SUPPORT_BAND = 0.05
_MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
# An amount a comparison can be checked on: dollars or a percentage, with its scale word.
_SCALES = "thousand|million|billion|trillion"
_AMOUNT_TEXT = rf"(?:\$\s*)?\d[\d,]*(?:\.\d+)?(?:\s*(?:{_SCALES}))?(?:\s*%|\s*percent\b)?"
_AMOUNT = re.compile(
    rf"(?P<dollar>\$\s*)?(?P<value>\d[\d,]*(?:\.\d+)?)(?:\s*(?P<scale>{_SCALES}))?"
    r"(?P<percent>\s*%|\s*percent\b)?",
    re.IGNORECASE,
)
_SCALE = {"": 1.0, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_THAN = re.compile(
    r"\b(?P<way>higher|greater|more|larger|bigger|lower|less|smaller|fewer)\s+than\b", re.I
)
_LESS = {"lower", "less", "smaller", "fewer"}
_FROM_TO = re.compile(rf"\bfrom\s+(?P<a>{_AMOUNT_TEXT})\s+to\s+(?P<b>{_AMOUNT_TEXT})", re.I)
_CHANGE = re.compile(
    r"\b(?:(?P<up>increas|rose|rise|rising|grew|grow|climb|jump)"
    r"|(?P<down>decreas|declin|fell|fall|drop|shrank))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of the answer, what supports it, and whether that is enough."""

    text: str  # without citation markers
    supported: bool
    support: float  # cosine to the best source sentence
    sources: list[int] = field(default_factory=list)  # verified [n], best first
    written: list[int] = field(default_factory=list)  # the [n] the LLM wrote
    quote: str = ""  # the best supporting source sentence
    reason: str = ""  # why it is unsupported


def split_answer(text: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, the [n] numbers written in it) for each sentence."""
    out = []
    for start, end in sentence_spans(text, min_words=1):
        piece = _LIST_MARKER.sub("", text[start:end])
        written = [int(n) for m in _MARKER.finditer(piece) for n in re.split(r"\s*[,;]\s*", m[1])]
        clean = " ".join(_MARKER.sub("", piece).split())
        if clean.strip(" .,;:!?"):
            out.append((clean, list(dict.fromkeys(written))))
        elif out and written:  # a marker after the full stop belongs to the sentence before
            out[-1] = (out[-1][0], list(dict.fromkeys(out[-1][1] + written)))
    return out


def attribute(
    answer: str,
    question: str,
    sentences: Sentences,
    model: EmbeddingModel,
    threshold: float = SUPPORT_THRESHOLD,
    number_threshold: float = NUMBER_SUPPORT_THRESHOLD,
    labels: Sequence[str] = (),
) -> list[AnswerSentence]:
    """Every sentence of `answer`, checked against the source sentences (and, for names, the
    sources' labels: a file called "2023 Q3 AAPL.pdf" supports "AAPL")."""
    pieces = split_answer(answer)
    if not pieces:
        return []
    if not sentences.units:
        return [AnswerSentence(text, False, 0.0, [], written, "", "no source text")
                for text, written in pieces]  # fmt: skip
    vectors = model.encode_document([text for text, _ in pieces])
    similarity = np.asarray(vectors, dtype=np.float32).reshape(len(pieces), -1) @ (
        sentences.vectors.T
    )
    asked = content_words(question) | numbers(question)
    unit_numbers = [numbers(text) for text in sentences.texts()]
    source_numbers = set().union(*unit_numbers)
    source_words = content_words(" ".join(sentences.texts() + list(labels)))
    checked = []
    for (text, written), row in zip(pieces, similarity, strict=True):
        order = [int(i) for i in np.argsort(-row)]
        best = float(row[order[0]])
        stated = numbers(text) - numbers(question)
        names = name_words(text, question) - asked
        missing_names = {n for n in names if n not in source_words}
        reason = ""
        needed = number_threshold if stated else threshold
        if best < needed:
            reason = f"no source sentence says this (best similarity {best:.2f})"
        elif stated - source_numbers:
            reason = f"{', '.join(sorted(stated - source_numbers))} not in the sources"
        elif missing_names:
            reason = f"{', '.join(sorted(missing_names))} not in the sources"
        elif wrong := miscompared(text):
            reason = wrong
        # Cited: the sources of the sentences stating its numbers, else of the closest ones.
        backing = [i for i in order if unit_numbers[i] & stated] or [
            i for i in order if row[i] >= best - SUPPORT_BAND
        ]
        cited = list(dict.fromkeys(sentences.units[i].source for i in backing))
        quote = sentences.units[backing[0]].text
        checked.append(
            AnswerSentence(
                text,
                not reason,
                round(best, 4),
                cited if not reason else [],
                written,
                quote,
                reason,
            )  # fmt: skip
        )
    return checked


def miscompared(text: str) -> str:
    """The comparison of two amounts that `text` gets backwards, or "": "2.1% is higher than
    21%", "sales fell from $5 billion to $6 billion". Only dollars against dollars and
    percentages against percentages are compared (never years or counts, whose words vary)."""
    for match in _THAN.finditer(text):  # "A is higher than B"
        before = list(_AMOUNT.finditer(text, 0, match.start()))
        after = _AMOUNT.search(text, match.end())
        # "$3 million more than" states a difference, not a comparison: not checked
        if before and after and text[before[-1].end() : match.start()].strip():
            wrong = _backwards(before[-1], after, match["way"].lower() in _LESS, match["way"])
            if wrong:
                return wrong
    for match in _FROM_TO.finditer(text):  # "increased from A to B"
        ways = list(_CHANGE.finditer(text, 0, match.start()))
        first, second = _AMOUNT.fullmatch(match["a"]), _AMOUNT.fullmatch(match["b"])
        if ways and first and second:
            up = ways[-1]["up"] is not None
            if wrong := _backwards(first, second, up, "up" if up else "down"):
                return wrong
    return ""


def _backwards(first: re.Match[str], second: re.Match[str], second_bigger: bool, said: str) -> str:
    """Why "first … second" contradicts `second_bigger`, or "" (also when not comparable)."""
    kinds = [(bool(m["dollar"]), bool(m["percent"])) for m in (first, second)]
    if kinds[0] != kinds[1] or kinds[0] == (False, False):
        return ""
    a, b = (float(m["value"].replace(",", "")) * _SCALE[(m["scale"] or "").lower()]
            for m in (first, second))  # fmt: skip
    if a == b or (b > a) == second_bigger:
        return ""
    return f"{first[0].strip()} against {second[0].strip()}: not {said.lower()}"
