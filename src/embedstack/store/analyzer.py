"""Text → keyword terms for BM25: Unicode folding, lower case, stop words, Snowball stemming.

Matches Lucene's EnglishAnalyzer (what Pyserini's BM25 runs use) closely: word tokens, possessive
's removed, lower-cased, ASCII-folded, Lucene's English stop words, Porter stemming. Stemming is
PyStemmer (Snowball, C); the rest is a few lines, so it stays here.
"""

from __future__ import annotations

import re
import unicodedata

import Stemmer

from embedstack.errors import InvalidInputError

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET.
ENGLISH_STOP_WORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
     "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
     "these", "they", "this", "to", "was", "will", "with"]
)  # fmt: skip
STOP_WORD_LISTS = {"english": ENGLISH_STOP_WORDS, "none": frozenset()}
_WORD = re.compile(r"\w+(?:'\w+)*")
_POSSESSIVE = re.compile(r"'s$")
MAX_TERM_LENGTH = 64  # longer "words" (hashes, base64) are noise for BM25


class Analyzer:
    """`terms(text)`: the keyword terms of a text, the same way for documents and queries."""

    def __init__(self, language: str = "english", stopwords: str = "english") -> None:
        algorithm = "porter" if language == "english" else language
        if algorithm not in Stemmer.algorithms() and language != "none":
            raise InvalidInputError(
                f"unknown keyword language {language!r}; one of: none, "
                + ", ".join(sorted(Stemmer.algorithms()))
            )
        if stopwords not in STOP_WORD_LISTS:
            raise InvalidInputError(f"stopwords must be one of {sorted(STOP_WORD_LISTS)}")
        self.signature = f"1:{language}:{stopwords}"  # stored with the index it built
        self._stemmer = None if language == "none" else Stemmer.Stemmer(algorithm)
        self._stop_words = STOP_WORD_LISTS[stopwords]

    def terms(self, text: str) -> list[str]:
        words = [
            _POSSESSIVE.sub("", word).replace("'", "")
            for word in _WORD.findall(_fold(text).lower())
        ]
        words = [w for w in words if w and len(w) <= MAX_TERM_LENGTH and w not in self._stop_words]
        return self._stemmer.stemWords(words) if self._stemmer else words


def _fold(text: str) -> str:
    """'Café naïve' -> 'Cafe naive': strip accents (like Lucene's ASCIIFoldingFilter)."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
