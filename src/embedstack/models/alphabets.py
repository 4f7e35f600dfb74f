"""Sequence alphabets: which letters a DNA or protein sequence may hold, and which of them are
counted in k-mers.

Shared by the k-mer model and the sequence readers (standard library only, so an ingest that
only checks letters imports neither numpy's model code nor scikit-learn). Letters are
case-insensitive; RNA's U is read as T. Ambiguity codes (IUPAC N, R, Y…; protein X, B, Z…) are
valid letters that no k-mer is counted across; gaps ('-', '.') are not residues and are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

from embedstack.errors import InvalidInputError

AlphabetName = Literal["dna", "protein"]
ALPHABET_NAMES: tuple[AlphabetName, ...] = ("dna", "protein")
GAPS = "-."


@dataclass(frozen=True)
class Alphabet:
    """`letters` are counted (their order is the k-mer code); `skipped` are valid but uncounted."""

    name: AlphabetName
    letters: str
    skipped: str
    synonyms: tuple[tuple[str, str], ...] = ()  # (read as, letter): RNA's U is T

    @property
    def label(self) -> str:
        return "DNA" if self.name == "dna" else "protein"

    @property
    def valid(self) -> frozenset[str]:
        """Every letter a sequence may hold, in both cases, gaps included."""
        chars = self.letters + self.skipped + "".join(s for s, _ in self.synonyms) + GAPS
        return frozenset(chars + chars.lower())


DNA = Alphabet(
    "dna",
    letters="ACGT",
    skipped="NRYSWKMBDHV",  # IUPAC ambiguity codes
    synonyms=(("U", "T"),),
)
PROTEIN = Alphabet(
    "protein",
    letters="ACDEFGHIKLMNPQRSTVWY",  # the 20 standard amino acids
    skipped="XBZJUO*",  # unknown, ambiguous (B, Z, J), selenocysteine, pyrrolysine, stop
)
ALPHABETS: dict[str, Alphabet] = {"dna": DNA, "protein": PROTEIN}

_NUCLEOTIDES = frozenset("ACGTUN")
_NOT_LETTERS = dict.fromkeys(c for c in range(128) if not chr(c).isupper())


def get_alphabet(name: str) -> Alphabet:
    try:
        return ALPHABETS[name.lower()]
    except (KeyError, AttributeError):
        raise InvalidInputError(
            f"alphabet must be one of {', '.join(ALPHABETS)}, got {name!r}"
        ) from None


def detect_alphabet(sequence: str) -> AlphabetName:
    """The alphabet of a sequence: "dna" when at least 90% of its letters are A, C, G, T, U
    or N, else "protein".

    Proteins are far from that (those five amino acids are about a quarter of a typical
    protein), and a DNA sequence with a stray letter stays DNA, so the letter check can say
    which letter is wrong instead of calling the sequence a protein.
    """
    upper = sequence.upper()
    letters = len(upper.translate(_NOT_LETTERS))  # deleted at C speed: fast on a genome
    if not letters:
        return "protein"
    nucleotides = sum(upper.count(letter) for letter in _NUCLEOTIDES)
    return "dna" if nucleotides >= 0.9 * letters else "protein"


@cache
def _deleting(chars: frozenset[str]) -> dict[int, None]:
    """A `str.translate` table that deletes `chars`."""
    return dict.fromkeys(map(ord, chars))


def first_invalid(sequence: str, alphabet: Alphabet) -> tuple[int, str] | None:
    """(1-based position, letter) of the first letter `alphabet` does not allow, or None.

    `str.translate` deletes the valid letters at C speed, so a chromosome is checked quickly.
    """
    rest = sequence.translate(_deleting(alphabet.valid))
    if not rest:
        return None
    return sequence.index(rest[0]) + 1, rest[0]


def check_letters(sequence: str, alphabet: Alphabet) -> None:
    """InvalidInputError naming the first letter `alphabet` does not allow, and where."""
    bad = first_invalid(sequence, alphabet)
    if bad is not None:
        position, char = bad
        raise InvalidInputError(
            f"invalid letter {char!r} at position {position} for {alphabet.label}"
        )
