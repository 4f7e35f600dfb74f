"""Word vectors you trained yourself (word2vec or FastText, `embedstack words train`).

A trained folder holds gensim's own KeyedVectors files and `embedstack_words.json`, which says
how it was made. `load_model(folder)` claims any folder with that file, so the vectors back a
collection, `embedstack words similar --model folder`, and everything else a model does.
gensim is imported only when such a folder is loaded (the `words` extra).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedstack.errors import ModelLoadError, ModelNotFoundError
from embedstack.models.registry import LoadRequest
from embedstack.models.word_lookup import WordLookup

MANIFEST = "embedstack_words.json"
VECTORS_FILE = "vectors.kv"  # gensim's KeyedVectors.save (plus .npy files beside it)
ALGORITHMS = ("word2vec", "fasttext")
# One rule at training and lookup time: lower-cased runs of letters and digits, with inner
# apostrophes ("don't"); punctuation is not a word.
TRAINED_WORD = re.compile(r"\w+(?:'\w+)*", re.UNICODE)
FORMAT = 1


@dataclass(frozen=True)
class WordsManifest:
    """What `embedstack_words.json` records: how the vectors were made, for provenance."""

    algorithm: str
    dim: int
    vocab_size: int
    corpus: str
    created: str
    gensim_version: str
    window: int
    min_count: int
    epochs: int
    texts: int
    corpus_words: int
    train_seconds: float
    words_per_second: float
    tokenizer: str = TRAINED_WORD.pattern
    format: int = FORMAT

    def write(self, folder: Path) -> None:
        text = json.dumps(asdict(self), indent=2, ensure_ascii=False)
        (folder / MANIFEST).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def read(cls, folder: Path) -> WordsManifest:
        path = folder / MANIFEST
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            manifest = cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise ModelLoadError(f"cannot read {path}: {exc}") from exc
        if manifest.format != FORMAT or manifest.algorithm not in ALGORITHMS:
            raise ModelLoadError(
                f"{path}: format {manifest.format}, algorithm {manifest.algorithm!r} "
                f"is not one this embedstack reads (format {FORMAT}, {', '.join(ALGORITHMS)})"
            )
        if manifest.tokenizer != TRAINED_WORD.pattern:
            raise ModelLoadError(f"{path}: unknown tokenizer {manifest.tokenizer!r}")
        return manifest


class TrainedWords(WordLookup):
    """word2vec or FastText vectors from a trained folder; FastText also builds vectors for
    words it never saw, from their character n-grams (misspellings, rare inflections)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.manifest = WordsManifest.read(folder)
        keyed = _load_keyed_vectors(folder / VECTORS_FILE)
        self._subwords = keyed if self.manifest.algorithm == "fasttext" else None
        words = list(keyed.index_to_key)
        super().__init__(str(self.folder), words, keyed.vectors, TRAINED_WORD)

    def unseen_vector(self, word: str) -> np.ndarray | None:
        if self._subwords is None or not word:
            return None
        vector = np.asarray(self._subwords.get_vector(word), dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else None  # no n-gram of the word was ever trained


def _load_keyed_vectors(path: Path) -> Any:
    try:
        from gensim.models import KeyedVectors
    except ImportError as exc:
        raise ModelNotFoundError(
            f"{path.parent} holds trained word vectors, which need gensim: "
            'pip install "embedstack[words]"'
        ) from exc
    try:
        return KeyedVectors.load(str(path), mmap="r")
    except (OSError, ValueError, EOFError, AttributeError, ImportError) as exc:
        raise ModelLoadError(f"cannot load word vectors from {path}: {exc}") from exc


def is_trained_words(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def resolve(request: LoadRequest) -> TrainedWords | None:
    """A folder written by `train_word_vectors` (it has embedstack_words.json)."""
    path = Path(request.name).expanduser()
    if not is_trained_words(path):
        return None
    if request.backend not in (None, "static"):
        raise ModelNotFoundError(
            f"{path} holds word vectors, which run on 'static', not {request.backend!r}"
        )
    return TrainedWords(path)
