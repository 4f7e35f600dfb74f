"""Few-shot classification evaluation, exactly as MTEB 1.12 runs it (AbsTaskClassification with
logRegClassificationEvaluator), on a folder with `train.csv` and `test.csv` (`text`, `category`).

MTEB's protocol, read from its source (mteb 1.12.75, the version behind the leaderboard figures):

- One index array `arange(n_train)` is shuffled in place once per experiment, so experiment k
  uses the array after k shuffles. Every shuffle starts from seed 42: the task seeds numpy's
  global generator with 42, and each experiment's evaluator reseeds it with 42 right after its
  shuffle. Experiment k therefore applies `RandomState(42).shuffle` k times.
- Walking the shuffled array, the first `samples_per_label` rows of each label are kept, in the
  order they are met.
- `LogisticRegression(random_state=42, max_iter=100)` is fitted on the unscaled embeddings and
  scored on the whole test split: accuracy, macro F1, weighted F1 (and average precision for two
  classes). The reported scores are the means over the experiments.

MTEB's labels are integers; here a `category` column of integers is encoded as such, any other
column as its sorted strings, which keeps the class order MTEB's integer ids have.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedstack.errors import DatasetError, InvalidInputError
from embedstack.evaluation.files import jsonl_rows, open_text
from embedstack.evaluation.report import EvalReport
from embedstack.models import DEFAULT_MODEL, EmbeddingModel, load_model

SEED = 42
MAX_ITER = 100


@dataclass
class LabelledTexts:
    """One split: texts and their labels, in file order (MTEB's sampling depends on it)."""

    texts: list[str]
    labels: list[str]


@dataclass
class ClassificationData:
    train: LabelledTexts
    test: LabelledTexts


def read_labelled(
    path: str | Path,
    text_column: str = "text",
    label_column: str | None = "category",
    split: str | None = None,
) -> LabelledTexts:
    """Texts and labels from a CSV (with a header) or a JSONL file (`.gz` too), in file order.

    With `label_column=None` only texts are read (labels stay empty). With `split`, only rows
    whose `split` column equals it. Errors name the file, the column or the line at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing {path}")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        wanted = [c for c in (text_column, label_column) if c is not None]
        rows: Iterator[tuple[int, dict]] = _csv_rows(path, wanted)
    elif name.endswith((".jsonl", ".ndjson")):
        rows = jsonl_rows(path)
    else:
        raise DatasetError(f"{path}: expected a .csv or .jsonl file")
    data = LabelledTexts([], [])
    for number, row in rows:
        if split is not None:
            if "split" not in row:
                raise DatasetError(f"{path}:{number}: no 'split' field to select {split!r}")
            if row["split"] != split:
                continue
        text = row.get(text_column)
        if text_column not in row:
            raise DatasetError(f"{path}:{number}: no column {text_column!r}")
        if not isinstance(text, str):
            raise DatasetError(f"{path}:{number}: {text_column!r} is not text")
        data.texts.append(text)
        if label_column is not None:
            if label_column not in row:
                raise DatasetError(f"{path}:{number}: no column {label_column!r}")
            label = row[label_column]
            if label is None or label == "" or isinstance(label, dict | list | float):
                raise DatasetError(f"{path}:{number}: {label_column!r} is empty or not a label")
            data.labels.append(str(label))
    if not data.texts:
        where = f" with split {split!r}" if split is not None else ""
        raise DatasetError(f"{path} has no rows{where}")
    return data


def _csv_rows(path: Path, columns: list[str]) -> Iterator[tuple[int, dict]]:
    try:
        with open_text(path) as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if not header:
                raise DatasetError(f"{path} is empty")
            for column in columns:
                if column not in header:
                    raise DatasetError(
                        f"{path} has no column {column!r} (columns: {', '.join(header)})"
                    )
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if k is not None}
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: unreadable ({exc})") from exc


def load_classification(folder: str | Path) -> ClassificationData:
    """Read `train.csv` and `test.csv` (columns `text`, `category`) from `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"no data set folder at {folder}")
    data = ClassificationData(
        train=read_labelled(folder / "train.csv"), test=read_labelled(folder / "test.csv")
    )
    check_test_labels(data, f"{folder / 'test.csv'}")
    return data


def check_test_labels(data: ClassificationData, where: str = "the test split") -> None:
    """A classifier cannot predict a label it never saw: refuse test labels unseen in training."""
    unseen = sorted(set(data.test.labels) - set(data.train.labels))
    if unseen:
        shown = ", ".join(repr(label) for label in unseen[:10])
        more = f" and {len(unseen) - 10} more" if len(unseen) > 10 else ""
        raise DatasetError(f"{where} has labels the train split lacks: {shown}{more}")


def encode_labels(train: Sequence[str], test: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Integer ids in MTEB's class order: numeric labels by value, others by sorted string."""
    names = sorted(set(train) | set(test))
    with contextlib.suppress(ValueError):  # not all integers: keep the string order
        names = sorted(names, key=int)
    ids = {name: number for number, name in enumerate(names)}
    return np.array([ids[x] for x in train]), np.array([ids[x] for x in test])


def undersample(
    labels: Sequence[Any] | np.ndarray, samples_per_label: int, idxs: np.ndarray
) -> tuple[list[int], np.ndarray]:
    """One MTEB experiment's training rows: shuffle `idxs` in place with a fresh seed-42
    generator, then keep the first `samples_per_label` rows of each label, in order met."""
    np.random.RandomState(SEED).shuffle(idxs)
    counts: defaultdict[Any, int] = defaultdict(int)
    picked = []
    for i in idxs:
        if counts[labels[i]] < samples_per_label:
            picked.append(int(i))
            counts[labels[i]] += 1
    return picked, idxs


def experiment_rows(
    labels: Sequence[Any] | np.ndarray, samples_per_label: int, n_experiments: int
) -> list[list[int]]:
    """The training rows of each experiment (the index array is shuffled cumulatively)."""
    idxs = np.arange(len(labels))
    rows = []
    for _ in range(n_experiments):
        picked, idxs = undersample(labels, samples_per_label, idxs)
        rows.append(picked)
    return rows


def score_experiment(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, float]:
    """logRegClassificationEvaluator's scores for one experiment."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score

    clf = LogisticRegression(random_state=SEED, max_iter=MAX_ITER)
    clf.fit(x_train, y_train)
    y_pred = clf.predict(x_test)
    scores = {
        "accuracy": float(accuracy_score(y_test, y_pred)),
        "f1": float(f1_score(y_test, y_pred, average="macro")),
        "f1_weighted": float(f1_score(y_test, y_pred, average="weighted")),
    }
    if len(np.unique(y_train)) == 2:
        scores["ap"] = float(average_precision_score(y_test, y_pred, average="macro"))
        scores["ap_weighted"] = float(average_precision_score(y_test, y_pred, average="weighted"))
    return scores


def evaluate_classification(
    data: str | Path | ClassificationData,
    model: str | EmbeddingModel = DEFAULT_MODEL,
    *,
    samples_per_label: int = 8,
    n_experiments: int = 10,
    batch_size: int = 32,
    show_progress: bool = False,
) -> EvalReport:
    """MTEB's few-shot logistic-regression scores (means over experiments, and each one).

    Each text is embedded once: the test split, and the union of the experiments' training
    rows (MTEB re-embeds the sampled rows every experiment; the vectors are the same).
    """
    if samples_per_label < 1:
        raise InvalidInputError(f"samples_per_label must be at least 1, not {samples_per_label}")
    if n_experiments < 1:
        raise InvalidInputError(f"n_experiments must be at least 1, not {n_experiments}")
    dataset = data if isinstance(data, ClassificationData) else load_classification(data)
    check_test_labels(dataset)
    y_train, y_test = encode_labels(dataset.train.labels, dataset.test.labels)
    if len(np.unique(y_train)) < 2:
        raise InvalidInputError("the train split has one class only; a classifier needs two")
    rows = experiment_rows(y_train, samples_per_label, n_experiments)
    encoder = load_model(model) if isinstance(model, str) else model

    started = time.perf_counter()
    needed = sorted(set().union(*rows))
    vectors = encoder.encode(
        [dataset.train.texts[i] for i in needed],
        batch_size=batch_size,
        show_progress_bar=show_progress,
    )
    position = {row: n for n, row in enumerate(needed)}
    x_test = encoder.encode(
        dataset.test.texts, batch_size=batch_size, show_progress_bar=show_progress
    )
    embed_seconds = time.perf_counter() - started

    started = time.perf_counter()
    scores = []
    for picked in rows:
        x_train = vectors[[position[i] for i in picked]]
        scores.append(score_experiment(x_train, y_train[picked], x_test, y_test))
    fit_seconds = time.perf_counter() - started
    means = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
    return EvalReport(
        {
            **means,
            "main_score": means["accuracy"],
            "accuracy_std": float(np.std([s["accuracy"] for s in scores])),
            "scores_per_experiment": scores,
            "n_experiments": n_experiments,
            "samples_per_label": samples_per_label,
            "n_labels": int(len(np.unique(y_train))),
            "n_train_embedded": len(needed),
            "n_test": len(dataset.test.texts),
            "embed_seconds": embed_seconds,
            "fit_seconds": fit_seconds,
            "texts_per_s": (len(needed) + len(dataset.test.texts)) / embed_seconds,
            "model": encoder.name,
            "backend": encoder.backend,
        },
        task="Classification",
        data=data,
    )
