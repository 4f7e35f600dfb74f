"""K-mer profiles: a DNA or protein sequence embedded as the counts of its k-letter words.

Alignment-free sequence comparison (Vinga & Almeida, Bioinformatics 2003): two sequences of
one gene or protein family share most of their short words, whatever their lengths and
without aligning them. Counts are over a fixed vocabulary (every k-mer of the alphabet, in
code order), so vectors from any two calls compare; they are sublinear (1 + log count, as
scikit-learn's `sublinear_tf`: a repeat does not drown the rest), optionally IDF-weighted
(words every sequence has say little), and L2-normalised, so a dot product is a cosine.

`KmerProfile` is the scikit-learn estimator (IDF is what `fit` learns); `KmerModel` wraps one
as an `EmbeddingModel` of modality "sequence". A fitted profile is saved as a folder of
JSON and one `.npy` array (no pickle), which `load_model(path)` loads.

Counting is numpy throughout: each letter becomes a code, k shifted slices build every k-mer's
code at once, a cumulative count of ambiguity codes drops the k-mers holding one, and
`bincount` counts. Long sequences are read in windows, so memory stays bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from embedstack.errors import InvalidInputError, LimitExceededError, ModelLoadError
from embedstack.models.alphabets import DNA, GAPS, Alphabet, check_letters, get_alphabet
from embedstack.models.base import BaseEmbeddingModel, Modality

MAX_DIM = 2**16  # 4^8 DNA 8-mers, 20^3 protein 3-mers; one 65,536-d float32 row is 256 KB
WINDOW = 1 << 22  # letters counted per pass: ~5 int64 arrays of this length at a time
BACKEND = "kmer"
CONFIG_FILE = "kmer_profile.json"
IDF_FILE = "idf.npy"
FORMAT = "embedstack-kmer-profile"
FORMAT_VERSION = 1
MAX_LETTERS = 1_000_000_000  # `max_tokens`: nothing is truncated; a profile reads it all

_SKIP = 254  # an ambiguity code: valid, but no k-mer is counted across it
_GAP = 253  # not a residue: dropped before counting


class KmerProfile(TransformerMixin, BaseEstimator):
    """Sequences (strings) → L2-normalised k-mer profiles, float32 (n, dim).

    alphabet: "dna" (ACGT; U read as T; IUPAC codes such as N skipped) or "protein" (the 20
    standard amino acids; X, B, Z, J, U, O and * skipped). k: word length; dim = alphabet^k,
    capped at 2**16. idf: weight each k-mer by log((1 + n) / (1 + df)) + 1 learnt by `fit`
    (with idf=False nothing is learnt and `transform` needs no fit). canonical (DNA only): a
    k-mer and its reverse complement count as one, so a sequence and its reverse strand give
    the same vector (reads of unknown orientation); dim is then the number of such pairs.
    """

    def __init__(
        self, alphabet: str = "dna", k: int = 5, idf: bool = True, canonical: bool = False
    ) -> None:
        self.alphabet = alphabet
        self.k = k
        self.idf = idf
        self.canonical = canonical

    # ---- scikit-learn ------------------------------------------------------------------------

    def fit(self, X: Iterable[str], y: Any = None) -> KmerProfile:
        self._fit_rows(self._rows(X))
        return self

    def fit_transform(self, X: Iterable[str], y: Any = None, **fit_params: Any) -> np.ndarray:
        rows = self._rows(X)
        self._fit_rows(rows)
        return self._weigh(rows)

    def transform(self, X: Iterable[str]) -> np.ndarray:
        if self.idf:
            check_is_fitted(self, "idf_")
        return self._weigh(self._rows(X))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The k-mer of each dimension (with canonical=True, the smaller of each pair)."""
        return np.array(kmer_names(self._vocabulary()), dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = bool(self.idf)
        return tags

    # ---- counting ----------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._vocabulary().dim

    def counts(self, X: Iterable[str]) -> np.ndarray:
        """Raw k-mer counts, float64 (n, dim): what `fit` learns from and `transform` weighs."""
        rows = self._rows(X)
        out = np.zeros((len(rows), self.dim), dtype=np.float64)
        for row, (kmers, counts) in enumerate(rows):
            out[row, kmers] = counts
        return out

    def _vocabulary(self) -> Vocabulary:
        return vocabulary(self.alphabet, self.k, self.canonical)

    def _rows(self, X: Iterable[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(k-mers present, their counts) per sequence: a sequence holds few of 65,536 k-mers,
        so only the output matrix is ever dense."""
        vocabulary = self._vocabulary()
        rows = []
        for row, sequence in enumerate(_as_sequences(X)):
            try:
                counts = vocabulary.count(sequence)
            except InvalidInputError as exc:
                raise type(exc)(f"sequence {row}: {exc}") from None
            kmers = np.flatnonzero(counts)
            rows.append((kmers, counts[kmers].astype(np.float64)))
        return rows

    def _fit_rows(self, rows: list[tuple[np.ndarray, np.ndarray]]) -> None:
        n, dim = len(rows), self.dim
        self.n_sequences_ = n
        self.n_features_out_ = dim
        if self.idf:
            df = np.zeros(dim, dtype=np.float64)
            for kmers, _ in rows:
                df[kmers] += 1
            self.idf_ = np.log((1.0 + n) / (1.0 + df)) + 1.0

    def _weigh(self, rows: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Sublinear counts (1 + log), times IDF, L2-normalised; float32 (n, dim)."""
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        for row, (kmers, counts) in enumerate(rows):
            weights = 1.0 + np.log(counts)
            if self.idf:
                weights *= self.idf_[kmers]
            out[row, kmers] = weights / np.linalg.norm(weights)
        return out

    # ---- files -------------------------------------------------------------------------------

    def save(self, folder: str | Path, name: str | None = None) -> Path:
        """Write `kmer_profile.json` (parameters, the model's name) and `idf.npy` to `folder`."""
        if self.idf:
            check_is_fitted(self, "idf_")
        self._vocabulary()  # invalid parameters fail before anything is written
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": name or folder.resolve().name,
            "params": self.get_params(),
            "dim": self.dim,
            "n_sequences": getattr(self, "n_sequences_", None),
        }
        if self.idf:
            np.save(folder / IDF_FILE, self.idf_, allow_pickle=False)
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> KmerProfile:
        """A profile written by `save`; nothing in the folder is executed."""
        return cls._load(Path(folder))[0]

    @classmethod
    def _load(cls, folder: Path) -> tuple[KmerProfile, str]:
        config_path = folder / CONFIG_FILE
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{config_path}: not a readable k-mer profile ({exc})") from exc
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ModelLoadError(f"{config_path} is not an embedstack k-mer profile")
        if config.get("version") != FORMAT_VERSION:
            raise ModelLoadError(
                f"{config_path} has format version {config.get('version')}; "
                f"this embedstack reads {FORMAT_VERSION}"
            )
        try:
            profile = cls(**config["params"])
            dim = profile.dim
            if dim != config["dim"]:
                raise ValueError(f"its parameters give {dim} dimensions, it says {config['dim']}")
            if profile.idf:
                idf = np.load(folder / IDF_FILE, allow_pickle=False)
                if idf.shape != (dim,) or not np.isfinite(idf).all() or (idf <= 0).any():
                    raise ValueError(f"{IDF_FILE} is not {dim} positive weights")
                profile.idf_ = idf.astype(np.float64)
            profile.n_sequences_ = int(config.get("n_sequences") or 0)
            profile.n_features_out_ = dim
            name = str(config.get("name") or folder.name)
        except (KeyError, TypeError, ValueError, OSError, InvalidInputError) as exc:
            raise ModelLoadError(f"{folder}: inconsistent k-mer profile ({exc})") from exc
        return profile, name


class KmerModel(BaseEmbeddingModel):
    """A `KmerProfile` as an embedding model: each item is a sequence string."""

    modality: Modality = "sequence"
    backend = BACKEND

    def __init__(self, name: str, profile: KmerProfile) -> None:
        if profile.idf:
            check_is_fitted(profile, "idf_")
        self.name = name
        self.profile = profile
        self.dim = profile.dim
        self.max_tokens = MAX_LETTERS

    def encode(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        if isinstance(texts, str):
            return self.profile.transform([texts])[0]
        return self.profile.transform(texts)

    def __repr__(self) -> str:
        profile = self.profile
        return (
            f"KmerModel(name={self.name!r}, alphabet={profile.alphabet!r}, k={profile.k}, "
            f"idf={profile.idf}, canonical={profile.canonical}, dim={self.dim})"
        )


class Vocabulary:
    """The k-mers of one alphabet, k and strandedness, and how to count them in a sequence."""

    def __init__(self, alphabet: Alphabet, k: int, canonical: bool) -> None:
        self.alphabet, self.k, self.canonical = alphabet, k, canonical
        self.base = len(alphabet.letters)
        self.table = _letter_codes(alphabet)
        # canonical: the code of a k-mer → the index of its pair (k-mer, reverse complement)
        self.index: np.ndarray | None = None
        if canonical:
            codes = np.arange(self.base**k, dtype=np.int64)
            smaller = np.minimum(codes, _reverse_complement_codes(codes, k))
            pairs, self.index = np.unique(smaller, return_inverse=True)
            self.dim = len(pairs)
            self.pair_codes = pairs
        else:
            self.dim = self.base**k

    def count(self, sequence: str) -> np.ndarray:
        """The k-mer counts of one sequence (int64, dim)."""
        if not isinstance(sequence, str):
            raise InvalidInputError(f"a sequence must be a string, not {type(sequence).__name__}")
        if not sequence:
            raise InvalidInputError("empty sequence")
        check_letters(sequence, self.alphabet)
        letters = self.table[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]
        letters = letters[letters != _GAP]
        counts = np.zeros(self.dim, dtype=np.int64)
        step = WINDOW
        for start in range(0, max(len(letters) - self.k + 1, 0), step):
            codes = self._codes(letters[start : start + step + self.k - 1])
            counts += np.bincount(codes, minlength=self.dim)
        if not counts.any():
            raise InvalidInputError(
                f"no {self.k}-mer without an ambiguity code or stop "
                f"(length {len(letters)}, k={self.k})"
            )
        return counts

    def _codes(self, letters: np.ndarray) -> np.ndarray:
        """The vocabulary index of every k-mer in `letters` that holds no ambiguity code."""
        k, base = self.k, self.base
        windows = len(letters) - k + 1
        skipped = letters == _SKIP
        seen = np.concatenate(([0], np.cumsum(skipped, dtype=np.int64)))
        clean = seen[k:] - seen[:windows] == 0
        values = np.where(skipped, 0, letters).astype(np.int64)
        codes = np.zeros(windows, dtype=np.int64)
        for j in range(k):
            codes *= base
            codes += values[j : j + windows]
        codes = codes[clean]
        if self.index is not None:
            return self.index[codes]
        return codes


def vocabulary(alphabet: str, k: int, canonical: bool) -> Vocabulary:
    """The vocabulary for these parameters, checked (and memoised: building one is numpy work)."""
    letters = get_alphabet(alphabet)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidInputError(f"k must be a whole number ≥ 1, got {k!r}")
    if canonical and letters is not DNA:
        raise InvalidInputError("canonical k-mers (reverse complements) are for DNA only")
    n_letters, k = len(letters.letters), int(k)
    dim = _dim(n_letters, k, canonical)
    if dim > MAX_DIM:
        largest = max(j for j in range(1, k) if _dim(n_letters, j, canonical) <= MAX_DIM)
        raise LimitExceededError(
            f"k={k} gives {dim:,} {letters.label} k-mer dimensions, over the limit of "
            f"{MAX_DIM:,}; use k ≤ {largest}"
        )
    return _vocabulary(letters.name, k, bool(canonical))


def _dim(n_letters: int, k: int, canonical: bool) -> int:
    """alphabet^k; canonical: pairs of reverse complements, palindromes (even k) once."""
    if not canonical:
        return n_letters**k
    return (n_letters**k + (n_letters ** (k // 2) if k % 2 == 0 else 0)) // 2


@cache
def _vocabulary(alphabet: str, k: int, canonical: bool) -> Vocabulary:
    return Vocabulary(get_alphabet(alphabet), k, canonical)


def kmer_names(vocabulary: Vocabulary) -> list[str]:
    """The k-mer of each dimension, as letters."""
    letters = np.array(list(vocabulary.alphabet.letters))
    codes = vocabulary.pair_codes if vocabulary.canonical else np.arange(vocabulary.dim)
    k, base = vocabulary.k, vocabulary.base
    digits = (codes[:, None] // base ** np.arange(k - 1, -1, -1)) % base
    return ["".join(row) for row in letters[digits]]


def _letter_codes(alphabet: Alphabet) -> np.ndarray:
    """Byte → code: a letter's rank, _SKIP for ambiguity codes, _GAP for gaps."""
    table = np.full(256, _SKIP, dtype=np.uint8)  # check_letters has refused anything else
    for rank, letter in enumerate(alphabet.letters):
        table[ord(letter)] = table[ord(letter.lower())] = rank
    for read_as, letter in alphabet.synonyms:
        table[ord(read_as)] = table[ord(read_as.lower())] = alphabet.letters.index(letter)
    for gap in GAPS:
        table[ord(gap)] = _GAP
    return table


def _reverse_complement_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """DNA codes (A0 C1 G2 T3, first letter most significant) of the reverse complements:
    the complement of code b is 3 - b, and reversing swaps digit j with digit k-1-j."""
    out = np.zeros_like(codes)
    rest = codes.copy()
    for _ in range(k):
        out = out * 4 + (3 - rest % 4)
        rest //= 4
    return out


def _as_sequences(X: Iterable[str]) -> list[str]:
    if isinstance(X, str | bytes):
        raise InvalidInputError("pass a list of sequences, not one string")
    sequences = list(X)
    if not sequences:
        raise InvalidInputError("no sequences given")
    return sequences
