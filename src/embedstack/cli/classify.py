"""`embedstack classify train|predict|eval`: a text classifier from a labelled CSV or JSONL file.

The analysis package (and so scikit-learn) is imported inside the commands, so that the CLI
starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from embedstack.cli.common import (
    BackendOpt,
    BatchOpt,
    JsonOpt,
    ModelOpt,
    check_model,
    err,
    escape_controls,
    fail,
    out,
    print_json,
    user_errors,
)
from embedstack.models import DEFAULT_MODEL

if TYPE_CHECKING:
    from embedstack.analysis.classifier import EmbeddingClassifier

classify_app = typer.Typer(
    help="Train a text classifier on labelled rows, then predict and evaluate with it.",
    no_args_is_help=True,
)

DataOpt = Annotated[Path, typer.Option(help="CSV (with a header) or JSONL file, .gz allowed.")]
TextColumnOpt = Annotated[str, typer.Option(help="Column (or JSON field) holding the text.")]
LabelColumnOpt = Annotated[str, typer.Option(help="Column (or JSON field) holding the label.")]
FolderArg = Annotated[Path, typer.Argument(help="Folder written by `classify train`.")]
AVERAGES = ("macro avg", "weighted avg")  # rows of `classify eval`'s table below the classes


def _load(folder: Path) -> EmbeddingClassifier:
    from embedstack.analysis.classifier import EmbeddingClassifier

    classifier = EmbeddingClassifier.load(folder)
    classifier.set_params(show_progress=True)
    _warm(classifier)
    return classifier


def _warm(classifier: EmbeddingClassifier) -> None:
    with err.status(f"Loading {classifier.model}…"):
        classifier.encoder()


@classify_app.command("train")
@user_errors
def train(
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the classifier to.")],
    text_column: TextColumnOpt = "text",
    label_column: LabelColumnOpt = "category",
    head: Annotated[str, typer.Option(help="logistic | logistic-cv | knn.")] = "logistic",
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    c: Annotated[float, typer.Option("--C", help="Inverse regularisation (logistic).")] = 1.0,
    n_neighbors: Annotated[int, typer.Option(help="Neighbours that vote (knn).")] = 5,
    batch_size: BatchOpt = 32,
    as_json: JsonOpt = False,
) -> None:
    """Embed the texts, fit the head, save the classifier (JSON + npz, no pickle)."""
    from embedstack.analysis.classifier import HEADS, EmbeddingClassifier
    from embedstack.evaluation import read_labelled

    if head not in HEADS:
        fail(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    if out_dir.exists() and not (out_dir.is_dir() and not any(out_dir.iterdir())):
        fail(
            f"{out_dir} already exists: give a new folder "
            "(classify train never overwrites a classifier)"
        )
    classifier = EmbeddingClassifier(
        model=model, head=head, backend=backend, C=c, n_neighbors=n_neighbors,
        batch_size=batch_size, show_progress=True,
    )  # fmt: skip
    classifier.check_params()  # a bad --C or --n-neighbors fails before any text is embedded
    check_model(model, None)
    rows = read_labelled(data, text_column, label_column)
    classifier.check_labels(rows.labels)  # one class only fails before the model loads
    _warm(classifier)
    classifier.fit(rows.texts, rows.labels)
    classifier.set_params(show_progress=False)
    classifier.save(out_dir)
    summary = {
        "out": str(out_dir),
        "n_texts": len(rows.texts),
        "classes": classifier.classes_.tolist(),
        "head": head,
        "model": classifier.model,
        "backend": classifier.encoder().backend,
        "C": getattr(classifier, "C_", None),
    }
    if as_json:
        print_json(summary)
        return
    picked = f" (C={summary['C']})" if summary["C"] is not None else ""
    out.print(
        Text(
            f"Trained a {head}{picked} classifier on {len(rows.texts)} texts, "
            f"{len(classifier.classes_)} classes; saved to {escape_controls(str(out_dir))}"
        )
    )


@classify_app.command("predict")
@user_errors
def predict(
    folder: FolderArg,
    data: DataOpt,
    text_column: TextColumnOpt = "text",
    as_json: JsonOpt = False,
) -> None:
    """The predicted label and its probability for each text in the file."""
    from embedstack.evaluation import read_labelled

    rows = read_labelled(data, text_column, None)
    classifier = _load(folder)
    probabilities = classifier.predict_proba(rows.texts)
    best = probabilities.argmax(axis=1)
    labels = classifier.classes_[best].tolist()
    scores = probabilities[range(len(best)), best].tolist()
    if as_json:
        print_json(
            {
                "predictions": [
                    {"text": text, "label": label, "probability": score}
                    for text, label, score in zip(rows.texts, labels, scores, strict=True)
                ]
            }
        )
        return
    table = Table(title=Text(f"{data} · {len(rows.texts)} texts"))
    table.add_column("text", max_width=60)  # wraps: the one column that gives way
    table.add_column("label", no_wrap=True, overflow="ellipsis", max_width=32)
    table.add_column("probability", justify="right", no_wrap=True)
    for text, label, score in zip(rows.texts, labels, scores, strict=True):
        table.add_row(Text(escape_controls(text)), Text(str(label)), f"{score:.3f}")
    out.print(table)


@classify_app.command("eval")
@user_errors
def evaluate(
    folder: FolderArg,
    data: DataOpt,
    text_column: TextColumnOpt = "text",
    label_column: LabelColumnOpt = "category",
    as_json: JsonOpt = False,
) -> None:
    """Accuracy, macro F1 and per-class precision/recall/F1 on labelled rows."""
    from embedstack.evaluation import read_labelled

    rows = read_labelled(data, text_column, label_column)
    classifier = _load(folder)
    report = classifier.report(rows.texts, rows.labels)
    if as_json:
        print_json(report)
        return
    title = f"{data} · accuracy {report['accuracy']:.4f} · macro F1 {report['macro_f1']:.4f}"
    table = Table(title=Text(title))
    for name in ("label", "precision", "recall", "f1", "support"):
        table.add_column(name, justify="left" if name == "label" else "right")
    lines = [*report["classes"].items(), None, *((a, report[a]) for a in AVERAGES)]
    for line in lines:
        if line is None:
            table.add_section()
            continue
        label, scores = line
        table.add_row(
            Text(escape_controls(label)),
            f"{scores['precision']:.3f}",
            f"{scores['recall']:.3f}",
            f"{scores['f1-score']:.3f}",
            str(int(scores["support"])),
        )
    out.print(table)
