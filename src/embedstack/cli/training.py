"""`embedstack finetune`. The training package (and torch, sentence-transformers) is imported
inside the command, so that the CLI starts fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedstack.cli.common import (
    DEFAULT_MLFLOW_URI,
    BaseUrlOpt,
    JsonOpt,
    MlflowOpt,
    MlflowUriOpt,
    err,
    fail,
    out,
    print_json,
    user_errors,
)
from embedstack.cli.evaluation import print_report
from embedstack.models import DEFAULT_MODEL


def parse_dims(raw: str | None) -> tuple[int, ...]:
    if not raw:
        return ()
    try:
        return tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        fail(f"--matryoshka takes whole numbers separated by commas, got {raw!r}")


@user_errors
def finetune(
    train: Annotated[
        Path,
        typer.Option(
            help="Pairs: a JSONL of {query, positive[, negative]}, a BEIR folder (its "
            "qrels/train.tsv), or a collection (pseudo-queries from its chunks, no labels)."
        ),
    ],
    out_folder: Annotated[Path, typer.Option("--out", help="New model folder (must not exist).")],
    base: Annotated[str, typer.Option(help="Model to start from: catalog name or folder.")] = (
        DEFAULT_MODEL
    ),
    epochs: Annotated[int, typer.Option(help="Passes over the pairs.")] = 1,
    batch_size: Annotated[
        int, typer.Option(help="Pairs per step; the other pairs of a batch are its negatives.")
    ] = 32,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-5,
    loss: Annotated[str, typer.Option(help="mnrl | cached-mnrl | gist.")] = "mnrl",
    matryoshka: Annotated[
        str | None,
        typer.Option(help="Also train these prefixes to work alone, e.g. 384,256,128,64."),
    ] = None,
    hard_negatives: Annotated[
        int, typer.Option(help="Negatives per pair mined from the corpus (0: in-batch only).")
    ] = 1,
    max_pairs: Annotated[int | None, typer.Option(help="Train on a sample of this many.")] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Train exactly this many steps (overrides --epochs).")
    ] = None,
    pseudo: Annotated[
        str, typer.Option(help="Pseudo-query sources for a collection: title,ict,llm.")
    ] = "title,ict",
    llm: Annotated[
        str, typer.Option(help="LLM for 'llm' pseudo-queries: smollm2 or openai:MODEL.")
    ] = "smollm2",
    llm_base_url: BaseUrlOpt = None,
    llm_limit: Annotated[int, typer.Option(help="Chunks the LLM writes a question for.")] = 200,
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval", help="BEIR folder: nDCG@10 of the base and the new model."),
    ] = None,
    eval_split: Annotated[str, typer.Option(help="Split of --eval to score.")] = "test",
    checkpoint_minutes: Annotated[
        float, typer.Option(help="Save a checkpoint this often (Ctrl-C keeps the last one).")
    ] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed for sampling and shuffling.")] = 0,
    mlflow: MlflowOpt = False,
    mlflow_uri: MlflowUriOpt = DEFAULT_MLFLOW_URI,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune an embedding model on your pairs, or on a collection with no labels at all."""
    from embedstack.training import FinetuneOptions
    from embedstack.training import finetune as run_finetune
    from embedstack.training.trainer import FinetuneInterrupted

    options = FinetuneOptions(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, loss=loss,
        matryoshka=parse_dims(matryoshka), hard_negatives=hard_negatives, max_pairs=max_pairs,
        max_steps=max_steps, pseudo_sources=tuple(p.strip() for p in pseudo.split(",") if p),
        llm_limit=llm_limit, checkpoint_minutes=checkpoint_minutes, seed=seed,
    )  # fmt: skip

    def load_chat_model():
        from embedstack.rag.loader import load_llm

        return load_llm(llm, base_url=llm_base_url)

    try:
        report = run_finetune(
            base, train, out_folder, options, eval_data=eval_data, eval_split=eval_split,
            llm=load_chat_model, mlflow=mlflow_uri if mlflow else False,
            show_progress=True,
        )  # fmt: skip
    except FinetuneInterrupted as stop:
        if stop.saved is None:
            err.print(f"interrupted before the first checkpoint: {out_folder} was not written")
        else:
            err.print(f"interrupted: the checkpoint of step {stop.step} of {stop.total} is in "
                      f"{stop.saved} and loads like any model")  # fmt: skip
        raise typer.Exit(130) from None
    if as_json:
        print_json(report.to_dict())
        return
    rows = [("pairs", ", ".join(f"{n} {source}" for source, n in report.pairs.items())),
            ("steps · seconds", f"{report.steps} · {report.seconds:.0f}")]  # fmt: skip
    if report.losses:
        rows.append(
            ("loss first → last", f"{report.losses[0][1]:.4f} → {report.losses[-1][1]:.4f}")
        )
    if report.before and report.after:
        for key in ("ndcg@10", "recall@100", "mrr@10"):
            before, after = report.before[key], report.after[key]
            rows.append((f"{key} (dense)", f"{before:.5f} → {after:.5f} ({after - before:+.5f})"))
    if report.mlflow_run:
        rows.append(("mlflow run", report.mlflow_run))
    print_report(f"{report.model} (from {report.base})", rows)
    out.print(f"use it: embedstack ingest KB FILES --model {report.model}")
