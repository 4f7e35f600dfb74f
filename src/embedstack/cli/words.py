"""`embedstack words`: similar words and analogies with word vectors."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from embedstack.cli.common import JsonOpt, load_encoder, out, print_json, user_errors

words_app = typer.Typer(help="Word vectors: similar words and analogies.", no_args_is_help=True)

WordModelOpt = Annotated[str, typer.Option(help="A word-vector model from the catalog.")]
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
        raise InvalidInputError(f"{model} is not a word-vector model (try glove-6b-50d)")
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
