"""Typer app: thin wrappers over the Python API, Rich output, `--json` for machines.

Every user error prints one line, `error: ...`, on stderr and exits with code 2 (see
`embedstack.cli.common.user_errors`). The commands live in one module per group; this module
only puts them together. Heavy packages (the rag package, uvicorn, evaluation) are imported
inside the commands that need them, so that `embedstack --help` starts fast.
"""

from __future__ import annotations

import sys

import typer

from embedstack.cli import (
    analysis,
    answers,
    collection,
    evaluation,
    models,
    serving,
    training,
    words,
)
from embedstack.cli.classify import classify_app

app = typer.Typer(
    help="embedstack: embed, store, search and evaluate text on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# `embedstack --help` lists the commands in this order, then the groups.
app.command()(collection.add)
app.command()(collection.ingest)
app.command()(collection.search)
app.command()(answers.ask)
app.command()(serving.serve)
app.command("serve-llm")(serving.serve_llm)
app.command()(collection.info)
app.command()(collection.delete)
app.command()(collection.check)
app.command()(collection.compact)
app.command()(collection.reindex)
app.command()(models.embed)
app.command()(analysis.cluster)
app.command()(analysis.recommend)
app.command("map")(analysis.draw_map)
app.command()(analysis.duplicates)
app.command()(training.finetune)

app.add_typer(evaluation.eval_app, name="eval")
app.add_typer(classify_app, name="classify")
app.add_typer(models.models_app, name="models")
app.add_typer(words.words_app, name="words")


# Flags that also take an optional value, written `--flag=VALUE`, and the option that carries it.
FLAG_VALUES = {"--ray": "--ray-address"}


def with_flag_values(args: list[str]) -> list[str]:
    """`--ray=ADDRESS` as `--ray-address ADDRESS`, so that `--ray[=ADDRESS]` reads as documented.

    A Click flag takes no value, and Typer does not pass Click's optional-value options
    through; a value after a space would be taken for one more PATH, so only `=` joins one.
    """
    out: list[str] = []
    for position, arg in enumerate(args):
        if arg == "--":  # what follows is positional, whatever it looks like
            return out + args[position:]
        name, equals, value = arg.partition("=")
        out += [FLAG_VALUES[name], value] if equals and name in FLAG_VALUES else [arg]
    return out


def main() -> None:
    app(args=with_flag_values(sys.argv[1:]))
