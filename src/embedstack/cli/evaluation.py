"""`embedstack eval`: retrieval and STS benchmarks. The evaluation package is imported inside
the commands, so that the CLI starts fast."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from embedstack.cli.common import (
    DEFAULT_MLFLOW_URI,
    BackendOpt,
    BaseUrlOpt,
    BatchOpt,
    JsonOpt,
    MlflowOpt,
    MlflowUriOpt,
    ModelOpt,
    ModeOpt,
    RerankOpt,
    check_model,
    err,
    load_encoder,
    out,
    print_json,
    track_eval,
    user_errors,
)
from embedstack.models import DEFAULT_MODEL

if TYPE_CHECKING:
    from embedstack.evaluation.leaderboard import Leaderboard

eval_app = typer.Typer(
    help="Evaluate models and pipelines on standard data sets.", no_args_is_help=True
)

SplitOpt = Annotated[str, typer.Option(help="Split to evaluate.")]
TEXT_FIELDS = ("model", "backend", "error")  # leaderboard columns aligned left


def print_report(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=Text(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)


@eval_app.command("retrieval")
@user_errors
def eval_retrieval(
    data: Annotated[Path, typer.Option(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/.")],
    split: SplitOpt = "test",
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    batch_size: BatchOpt = 32,
    mode: ModeOpt = "hybrid",
    rerank: RerankOpt = None,
    mlflow: MlflowOpt = False,
    mlflow_uri: MlflowUriOpt = DEFAULT_MLFLOW_URI,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, recall@10/100 and MRR@10 on a BEIR data set, for the chosen search pipeline."""
    from embedstack.evaluation import evaluate_retrieval, load_beir

    check_model(model, base_url)
    dataset = load_beir(data, split)  # a corrupt data set fails before the model loads
    encoder = load_encoder(model, backend, base_url)
    result = evaluate_retrieval(
        dataset, encoder, split=split, batch_size=batch_size, mode=mode, rerank=rerank,
        show_progress=True,
    )  # fmt: skip
    if as_json:
        print_json(result)
    else:
        rows = [
            (key, f"{result[key]:.5f}") for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10")
        ]
        rows += [
            ("docs/s", f"{result['docs_per_s']:.1f}"),
            ("queries/s", f"{result['queries_per_s']:.1f}"),
            ("documents · queries", f"{result['n_docs']} · {result['n_queries']}"),
        ]
        pipeline = mode + (f" + rerank {rerank}" if rerank else "")
        print_report(
            f"{data} ({split}) · {result['model']} ({result['backend']}) · {pipeline}", rows
        )
    if mlflow:
        params = {"data": data, "split": split, "model": model, "mode": mode, "rerank": rerank}
        track_eval(mlflow_uri, "retrieval", {**params, "backend": result["backend"]}, result)


@eval_app.command("sts")
@user_errors
def eval_sts(
    data: Annotated[Path, typer.Option(help="STS Benchmark folder with sts-<split>.csv.")],
    split: SplitOpt = "test",
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    batch_size: BatchOpt = 32,
    mlflow: MlflowOpt = False,
    mlflow_uri: MlflowUriOpt = DEFAULT_MLFLOW_URI,
    as_json: JsonOpt = False,
) -> None:
    """Spearman correlation of cosine similarity with gold scores (MTEB's STS protocol)."""
    from embedstack.evaluation import evaluate_sts, load_sts

    check_model(model, base_url)
    pairs = load_sts(data, split)
    encoder = load_encoder(model, backend, base_url)
    result = evaluate_sts(pairs, encoder, split=split, batch_size=batch_size, show_progress=True)
    if as_json:
        print_json(result)
    else:
        rows = [
            ("spearman", f"{result['spearman']:.5f}"),
            ("pearson", f"{result['pearson']:.5f}"),
            ("sentences/s", f"{result['sentences_per_s']:.1f}"),
            ("pairs", str(result["n_pairs"])),
        ]
        print_report(f"{data} ({split}) · {result['model']} ({result['backend']})", rows)
    if mlflow:
        track_eval(mlflow_uri, "sts", {"data": data, "split": split, "model": model,
                   "backend": result["backend"]}, result)  # fmt: skip


@eval_app.command("classification")
@user_errors
def eval_classification(
    data: Annotated[
        Path, typer.Option(help="Folder with train.csv and test.csv (text, category).")
    ],
    samples_per_label: Annotated[
        int, typer.Option(help="Training texts drawn per label in each experiment.")
    ] = 8,
    n_experiments: Annotated[int, typer.Option(help="Experiments to average (MTEB: 10).")] = 10,
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    batch_size: BatchOpt = 32,
    mlflow: MlflowOpt = False,
    mlflow_uri: MlflowUriOpt = DEFAULT_MLFLOW_URI,
    as_json: JsonOpt = False,
) -> None:
    """Few-shot logistic-regression accuracy and F1, following MTEB 1.12's protocol exactly."""
    from embedstack.evaluation import evaluate_classification, load_classification

    check_model(model, base_url)
    dataset = load_classification(data)
    encoder = load_encoder(model, backend, base_url)
    result = evaluate_classification(
        dataset, encoder, samples_per_label=samples_per_label, n_experiments=n_experiments,
        batch_size=batch_size, show_progress=True,
    )  # fmt: skip
    if as_json:
        print_json(result)
    else:
        rows = [
            ("accuracy", f"{result['accuracy']:.5f} ± {result['accuracy_std']:.5f}"),
            ("f1 (macro)", f"{result['f1']:.5f}"),
            ("f1 (weighted)", f"{result['f1_weighted']:.5f}"),
        ]
        rows += [(key, f"{result[key]:.5f}") for key in ("ap", "ap_weighted") if key in result]
        rows += [
            ("experiments · per label", f"{result['n_experiments']} · {samples_per_label}"),
            ("labels · test texts", f"{result['n_labels']} · {result['n_test']}"),
            ("texts/s", f"{result['texts_per_s']:.1f}"),
        ]
        print_report(f"{data} · {result['model']} ({result['backend']})", rows)
    if mlflow:
        track_eval(mlflow_uri, "classification", {"data": data, "model": model,
                   "samples_per_label": samples_per_label, "n_experiments": n_experiments,
                   "backend": result["backend"]}, result)  # fmt: skip


@eval_app.command("clustering")
@user_errors
def eval_clustering(
    data: Annotated[Path, typer.Option(help="JSONL file (.jsonl or .jsonl.gz) or CSV.")],
    text_field: Annotated[str, typer.Option(help="Field holding the text.")] = "text",
    label_field: Annotated[str, typer.Option(help="Field holding the true label.")] = "label",
    split: Annotated[
        str | None, typer.Option(help="Only rows whose 'split' field equals this.")
    ] = None,
    sets: Annotated[int, typer.Option(help="Random subsets to cluster and average.")] = 1,
    subset_size: Annotated[
        int | None, typer.Option(help="Rows per subset (default: all rows, one set).")
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    batch_size: BatchOpt = 32,
    mlflow: MlflowOpt = False,
    mlflow_uri: MlflowUriOpt = DEFAULT_MLFLOW_URI,
    as_json: JsonOpt = False,
) -> None:
    """V-measure of mini-batch k-means clusters against the labels (MTEB 1.12's protocol)."""
    from embedstack.evaluation import evaluate_clustering, load_clustering
    from embedstack.evaluation.clustering import draw_sets

    check_model(model, base_url)
    dataset = load_clustering(data, text_field, label_field, split)
    draw_sets(len(dataset.texts), sets, subset_size)  # bad options fail before the model loads
    encoder = load_encoder(model, backend, base_url)
    result = evaluate_clustering(
        dataset, encoder, sets=sets, subset_size=subset_size, batch_size=batch_size,
        show_progress=True,
    )  # fmt: skip
    result["split"] = split
    if as_json:
        print_json(result)
    else:
        rows = [
            ("v_measure", f"{result['v_measure']:.5f} ± {result['v_measure_std']:.5f}"),
            ("sets · texts per set", f"{result['sets']} · {result['set_size']}"),
            ("labels", str(result["n_labels"])),
            ("texts/s", f"{result['texts_per_s']:.1f}"),
        ]
        print_report(f"{data} · {result['model']} ({result['backend']})", rows)
    if mlflow:
        track_eval(mlflow_uri, "clustering", {"data": data, "split": split, "model": model,
                   "sets": sets, "subset_size": subset_size, "backend": result["backend"]},
                   result)  # fmt: skip


@eval_app.command("leaderboard")
@user_errors
def eval_leaderboard(
    data: Annotated[Path, typer.Option(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/.")],
    models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated catalog names or model paths; 'installed' stands for every "
            "installed catalog text model (the default)."
        ),
    ] = None,
    split: SplitOpt = "test",
    mode: ModeOpt = "dense",
    sts: Annotated[
        Path | None, typer.Option(help="STS Benchmark folder: adds a Spearman column.")
    ] = None,
    classification: Annotated[
        Path | None, typer.Option(help="Folder with train.csv and test.csv: adds accuracy.")
    ] = None,
    max_docs: Annotated[
        int | None,
        typer.Option(help="Keep every judged document and sample others up to N (smoke runs)."),
    ] = None,
    batch_size: BatchOpt = 32,
    mlflow: MlflowOpt = False,
    mlflow_uri: MlflowUriOpt = DEFAULT_MLFLOW_URI,
    as_json: JsonOpt = False,
) -> None:
    """Rank embedding models on your own BEIR data: quality, speed, vector size and memory.

    Each model runs in a fresh process, so its speed and peak memory are its own.
    """
    from embedstack.evaluation.leaderboard import leaderboard

    board = leaderboard(
        data, models, split=split, mode=mode, sts=sts, classification=classification,
        max_docs=max_docs, batch_size=batch_size, show_progress=True,
    )  # fmt: skip
    if as_json:
        for note in board.notes:
            err.print(Text(note))
        print_json(board.to_dicts())
    else:
        print_leaderboard(board)
    if mlflow:
        metrics = {f"{row.model}.{key}": value for row in board for key, value in
                   asdict(row).items() if key != "model"}  # fmt: skip
        track_eval(mlflow_uri, "leaderboard", {"data": data, "split": split, "mode": mode,
                   "models": ",".join(row.model for row in board)}, metrics)  # fmt: skip
    if board.best is None:
        err.print("error: no model could be ranked; each row says why")
        raise typer.Exit(1)


def print_leaderboard(board: Leaderboard, console: Console = out) -> None:
    """The leaderboard as a Rich table, the best model in bold green, notes below."""
    table = Table(
        title=Text(board.title()),
        caption="memory: peak RSS increase while the model loads and embeds, each model in a "
        "fresh process · query ms: median time to embed one query",
    )
    for header, name, _ in board.columns():
        table.add_column(header, justify="left" if name in TEXT_FIELDS else "right")
    for row, cells in zip(board.rows, board.cells(), strict=True):
        style = "bold green" if row is board.best else None
        table.add_row(*(Text(cell) for cell in cells), style=style)
    console.print(table)
    for note in board.notes:
        console.print(Text(note))
