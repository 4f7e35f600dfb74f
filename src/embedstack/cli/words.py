"""`embedstack words`: similar words and analogies with word vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from embedstack.cli.common import (
    CollectionArg,
    JsonOpt,
    load_encoder,
    out,
    print_json,
    user_errors,
)
from embedstack.cli.evaluation import print_report

words_app = typer.Typer(
    help="Word vectors: similar words, analogies, and training your own.", no_args_is_help=True
)

WordModelOpt = Annotated[
    str, typer.Option(help="A word-vector model: catalog name or a folder from `words train`.")
]
WordK = Annotated[int, typer.Option("-k", "--k", help="How many words.")]


def print_words(title: str, pairs: list[tuple[str, float]], as_json: bool) -> None:
    if as_json:
        print_json([{"word": word, "score": score} for word, score in pairs])
        return
    table = Table(title=Text(title))
    table.add_column("word")
    table.add_column("cosine", justify="right")
    for word, score in pairs:
        table.add_row(Text(word), f"{score:.4f}")
    out.print(table)


def load_word_vectors(model: str):
    from embedstack.errors import InvalidInputError
    from embedstack.models.base import as_word_vectors

    vectors = as_word_vectors(load_encoder(model, None))
    if vectors is None:
        raise InvalidInputError(
            f"{model} is not a word-vector model (try glove-6b-50d or a `words train` folder)"
        )
    return vectors


@words_app.command("similar")
@user_errors
def words_similar(
    words: Annotated[list[str], typer.Argument(help="Word(s); several are added together.")],
    minus: Annotated[list[str] | None, typer.Option(help="Word(s) to subtract.")] = None,
    model: WordModelOpt = "glove-6b-50d",
    k: WordK = 10,
    as_json: JsonOpt = False,
) -> None:
    """Nearest words to the sum of WORDS minus --minus words."""
    pairs = load_word_vectors(model).most_similar(words, minus or [], k=k)
    title = " + ".join(words) + "".join(f" - {w}" for w in minus or [])
    print_words(title, pairs, as_json)


@words_app.command("analogy")
@user_errors
def words_analogy(
    a: str,
    b: str,
    c: str,
    model: WordModelOpt = "glove-6b-50d",
    k: WordK = 5,
    as_json: JsonOpt = False,
) -> None:
    """A is to B as C is to ?  (man king woman -> queen)"""
    print_words(f"{a} : {b} = {c} : ?", load_word_vectors(model).analogy(a, b, c, k=k), as_json)


@words_app.command("train")
@user_errors
def words_train(
    collection: CollectionArg,
    out_folder: Annotated[Path, typer.Option("--out", help="New folder for the model.")],
    algorithm: Annotated[str, typer.Option(help="word2vec | fasttext.")] = "word2vec",
    dim: Annotated[int, typer.Option(help="Vector size.")] = 100,
    epochs: Annotated[int, typer.Option(help="Passes over the text.")] = 5,
    min_count: Annotated[int, typer.Option(help="Drop words seen fewer times.")] = 5,
    window: Annotated[int, typer.Option(help="Context words on each side.")] = 5,
    buckets: Annotated[int, typer.Option(help="FastText character n-gram buckets.")] = 200_000,
    workers: Annotated[int | None, typer.Option(help="Threads (default: every CPU).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (with --workers 1: repeatable).")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Train word2vec or FastText vectors on a collection's stored text."""
    from embedstack.training.word_vectors import train_collection_words

    report = train_collection_words(
        collection, out_folder, algorithm=algorithm, dim=dim, epochs=epochs,
        min_count=min_count, window=window, buckets=buckets, workers=workers, seed=seed,
        show_progress=True,
    )  # fmt: skip
    if as_json:
        print_json(report.to_dict())
        return
    m = report.manifest
    print_report(
        f"{m.algorithm} vectors in {report.path}",
        [
            ("texts · words", f"{m.texts:,} · {m.corpus_words:,}"),
            ("vocabulary · dim", f"{m.vocab_size:,} · {m.dim}"),
            ("epochs · seconds", f"{m.epochs} · {m.train_seconds:.1f}"),
            ("words/s", f"{m.words_per_second:,.0f}"),
        ],
    )
    out.print(f"use it: embedstack words similar --model {report.path} WORD")
