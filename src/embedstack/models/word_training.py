"""Train word2vec or FastText vectors on your own texts with gensim, into a model folder.

gensim runs the training (its C loops, several threads); ours is the glue: one tokenising
rule shared with lookups, a corpus read as a stream on every pass (never held as a copy),
a progress bar in words, and a folder that appears whole or not at all.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedstack.errors import InvalidInputError, ModelNotFoundError
from embedstack.models.trained_words import (
    ALGORITHMS,
    TRAINED_WORD,
    VECTORS_FILE,
    WordsManifest,
)
from embedstack.progress import progress_tasks, status
from embedstack.rows import check_whole_number

DEFAULT_BUCKETS = 200_000  # FastText n-gram buckets; see train_word_vectors
MAX_SENTENCE = 10_000  # gensim silently cuts longer sentences: a long text goes in pieces


@dataclass(frozen=True)
class WordTrainingReport:
    """What a run did: where the model is, its manifest, and how fast it went."""

    path: str
    manifest: WordsManifest

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"path": self.path, **asdict(self.manifest)}


def tokenize(text: str) -> list[str]:
    """The words a trained model learns and looks up (lower-cased; see TRAINED_WORD)."""
    return TRAINED_WORD.findall(text.lower())


class _Sentences:
    """The corpus as token lists, read afresh on every pass; counts the words it hands out."""

    def __init__(self, texts: Callable[[], Iterable[str]]) -> None:
        self._texts = texts
        self.on_words: Callable[[int], None] = lambda n: None
        self.texts = 0  # texts with at least one word, in the last pass

    def __iter__(self) -> Iterator[list[str]]:
        self.texts = 0
        for text in self._texts():
            words = tokenize(text)
            self.texts += bool(words)
            for start in range(0, len(words), MAX_SENTENCE):
                piece = words[start : start + MAX_SENTENCE]
                self.on_words(len(piece))
                yield piece


def train_word_vectors(
    texts: Iterable[str] | Callable[[], Iterable[str]],
    out: str | Path,
    *,
    algorithm: str = "word2vec",
    dim: int = 100,
    epochs: int = 5,
    min_count: int = 5,
    window: int = 5,
    buckets: int = DEFAULT_BUCKETS,
    workers: int | None = None,
    seed: int = 1,
    corpus: str = "texts",
    show_progress: bool = False,
) -> WordTrainingReport:
    """Train word vectors on `texts` and save them as a model folder at `out`.

    `texts`: a list (or anything iterable more than once), or a function returning a fresh
    iterable on each call, so a large corpus streams from disk on every pass; a one-shot
    iterator is kept in memory. `buckets` (FastText only) is the size of the
    hashed n-gram table: gensim's 2,000,000 is 800 MB at 100-d, and a corpus of ~20k posts
    has far fewer distinct n-grams. `workers=1` with a fixed `seed` gives the same vectors
    every run. `load_model(out)` then loads the result.
    """
    target = _check(out, algorithm, dim, epochs, min_count, window, buckets)
    gensim = _gensim()
    sentences = _Sentences(_as_source(texts))
    build = target.with_name(f".{target.name}.training-{os.getpid()}")
    shutil.rmtree(build, ignore_errors=True)
    model_class = gensim.models.FastText if algorithm == "fasttext" else gensim.models.Word2Vec
    options: dict[str, Any] = dict(
        vector_size=dim, window=window, min_count=min_count, seed=seed,
        workers=workers or max(1, os.cpu_count() or 1),
    )  # fmt: skip
    if algorithm == "fasttext":
        options["bucket"] = buckets
    model = model_class(**options)
    with status("Counting words…", enabled=show_progress):
        model.build_vocab(corpus_iterable=sentences)
    texts_seen, total_words = sentences.texts, model.corpus_total_words
    if not model.wv.index_to_key:
        raise InvalidInputError(
            f"no word occurs {min_count} times in {corpus} ({total_words} words in "
            f"{texts_seen} texts): nothing to train (lower --min-count or add text)"
        )
    started = time.perf_counter()
    tasks = [("Epochs", epochs, "epochs"), ("Words", epochs * total_words, "words")]
    with progress_tasks(tasks, enabled=show_progress) as (epoch_done, words_read):
        sentences.on_words = words_read
        model.train(
            corpus_iterable=sentences,
            total_examples=model.corpus_count,  # pieces: a long text counts more than once
            epochs=epochs,
            callbacks=[_EpochCallback(epoch_done, gensim)],
        )
    seconds = time.perf_counter() - started
    manifest = WordsManifest(
        algorithm=algorithm, dim=dim, vocab_size=len(model.wv.index_to_key), corpus=corpus,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        gensim_version=gensim.__version__, window=window, min_count=min_count, epochs=epochs,
        texts=texts_seen, corpus_words=total_words, train_seconds=round(seconds, 3),
        words_per_second=round(epochs * total_words / max(seconds, 1e-9), 1),
    )  # fmt: skip
    try:
        build.mkdir(parents=True)
        model.wv.save(str(build / VECTORS_FILE))
        manifest.write(build)
        os.rename(build, target)  # whole or not at all
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return WordTrainingReport(str(target), manifest)


def _check(
    out: str | Path,
    algorithm: str,
    dim: int,
    epochs: int,
    min_count: int,
    window: int,
    buckets: int,
) -> Path:
    if algorithm not in ALGORITHMS:
        choices = ", ".join(ALGORITHMS)
        raise InvalidInputError(f"algorithm must be one of {choices}, got {algorithm!r}")
    check_whole_number("dim", dim, 1)
    check_whole_number("epochs", epochs, 1)
    check_whole_number("min_count", min_count, 1)
    check_whole_number("window", window, 1)
    check_whole_number("buckets", buckets, 1)
    target = Path(out).expanduser()
    if target.exists() or target.is_symlink():
        raise InvalidInputError(f"{out} already exists; choose a new --out folder")
    parent = next((p for p in target.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise InvalidInputError(f"cannot write {out}: {parent} is not a folder")
    return target


def _as_source(texts: Iterable[str] | Callable[[], Iterable[str]]) -> Callable[[], Iterable[str]]:
    if callable(texts):
        return texts
    if isinstance(texts, str):
        raise InvalidInputError("texts must be a list of texts, not one string")
    if iter(texts) is texts:  # a one-shot iterator: gensim reads the corpus once per epoch
        kept = list(texts)
        return lambda: kept
    return lambda: texts


def _gensim() -> Any:
    try:
        import gensim
        import gensim.models
        import gensim.models.callbacks
    except ImportError as exc:
        raise ModelNotFoundError(
            'training word vectors needs gensim: pip install "embedstack[words]"'
        ) from exc
    return gensim


def _EpochCallback(advance: Callable[[int], None], gensim: Any) -> Any:  # noqa: N802
    """A gensim callback that moves the epoch bar (built here: gensim is imported lazily)."""

    class EpochDone(gensim.models.callbacks.CallbackAny2Vec):
        def on_epoch_end(self, model: Any) -> None:
            advance(1)

    return EpochDone()
