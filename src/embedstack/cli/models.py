"""`embedstack models` (the catalog) and `embedstack embed` (registered in app.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from embedstack.cli.common import (
    BackendOpt,
    BaseUrlOpt,
    BatchOpt,
    JsonOpt,
    ModelOpt,
    check_model,
    load_encoder,
    out,
    print_json,
    user_errors,
)
from embedstack.models import DEFAULT_MODEL
from embedstack.models.runtime_choice import MIN_COSINE, MIN_MEAN_COSINE, RuntimeChoice

models_app = typer.Typer(help="The model catalog.", invoke_without_command=True)


@models_app.callback()
@user_errors
def models_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the models embedstack can load by name."""
    from embedstack.models import CATALOG

    if ctx.invoked_subcommand is not None:
        return
    entries = [spec.describe() for spec in CATALOG.values()]
    if as_json:
        print_json(entries)
        return
    table = Table(title="Model catalog")
    for column in ("name", "dim", "max tokens", "licence", "installed", "when to use"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(
            entry["name"],
            str(entry["dim"]),
            str(entry["max_tokens"]),
            entry["license"],
            "yes" if entry["installed"] else entry["install"],
            entry["when_to_use"],
        )
    out.print(table)


@models_app.command("info")
@user_errors
def models_info(
    name: Annotated[str, typer.Argument(help="Model name or alias.")], as_json: JsonOpt = False
) -> None:
    """Details of one catalog model, and which runtime `auto` runs it on here, and why."""
    from embedstack.models import find_spec
    from embedstack.models.transformer_backend import runtime_choice_for

    spec = find_spec(name)
    entry = spec.describe()
    choice = runtime_choice_for(spec)
    if as_json:
        print_json({**entry, "runtime": choice.to_dict() if choice else None})
        return
    table = Table(show_header=False, title=Text(entry["name"]))
    for key, value in entry.items():
        shown = ", ".join(value) if isinstance(value, list | tuple) else str(value)
        table.add_row(key, Text(shown))
    out.print(table)
    if choice is not None:
        out.print(runtime_table(choice))


def runtime_table(choice: RuntimeChoice) -> Table:
    """The measured table `auto` chose by: speed and cosine to fp32 of every candidate."""
    table = Table(
        title=Text(f"auto runs {choice.chosen} on this CPU"),
        caption=Text(
            f"{choice.cpu} · {choice.threads} threads · {choice.texts} calibration texts · "
            f"{choice.measured_at}; faithful: cosine to fp32 mean ≥ {MIN_MEAN_COSINE}, "
            f"min ≥ {MIN_COSINE}"
        ),
    )
    for column in ("backend", "texts/s", "mean cos", "min cos", "faithful", "note"):
        table.add_column(column, overflow="fold")
    for trial in choice.trials:
        if trial.error is not None:
            table.add_row(trial.backend, "–", "–", "–", "–", Text(trial.error))
            continue
        note = "chosen: fastest faithful" if trial.backend == choice.chosen else ""
        table.add_row(
            trial.backend,
            f"{trial.texts_per_s:.1f}",
            f"{trial.mean_cosine:.4f}",
            f"{trial.min_cosine:.4f}",
            "yes" if trial.faithful else "no",
            note,
        )
    return table


@user_errors
def embed(
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    input: Annotated[
        Path | None, typer.Option("--input", help="Text file, one text per line [default: stdin].")
    ] = None,
    npy: Annotated[Path | None, typer.Option(help="Also save the vectors as a .npy file.")] = None,
    batch_size: BatchOpt = 32,
    as_json: JsonOpt = False,
) -> None:
    """Embed texts (one per line) and print the vectors."""
    import numpy as np

    from embedstack.errors import InvalidInputError

    check_model(model, base_url)
    try:
        raw = input.read_text(encoding="utf-8") if input else sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{input or 'stdin'} is not UTF-8 text ({exc.reason})") from exc
    texts = [line for line in raw.splitlines() if line.strip()]
    if not texts:
        raise InvalidInputError(f"no text to embed in {input or 'stdin'}")
    encoder = load_encoder(model, backend, base_url)
    vectors = encoder.encode(texts, batch_size=batch_size, show_progress_bar=len(texts) > 64)
    if npy is not None:
        np.save(npy, vectors)
    if as_json:
        data = [
            {"index": i, "text": t, "embedding": v.tolist()}
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ]
        print_json(
            {"model": encoder.name, "backend": encoder.backend, "dim": encoder.dim, "data": data}
        )
        return
    table = Table(title=Text(f"{len(texts)} vectors · {encoder.name} ({encoder.backend})"))
    for column in ("#", "text", f"first dims of {encoder.dim}"):
        table.add_column(column, overflow="fold")
    for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        head = " ".join(f"{x:+.3f}" for x in vector[:6]) + " …"
        table.add_row(str(i), Text(text if len(text) <= 80 else text[:77] + "…"), head)
    out.print(table)
