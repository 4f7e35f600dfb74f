"""MTEB's few-shot classification protocol on real Banking77 rows, checked against MTEB's own loop
written out here (global numpy seeding, as mteb 1.12 does it) and scikit-learn."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from embedstack.errors import DatasetError, InvalidInputError
from embedstack.evaluation import evaluate_classification, load_classification, read_labelled
from embedstack.evaluation.classification import encode_labels, experiment_rows
from tests.conftest import SHARED_DATA, needs_shared_data

BANKING77 = SHARED_DATA / "banking77"


def banking_slice(folder: Path, labels: int = 10, train: int = 24, test: int = 12) -> Path:
    """The first `train`/`test` rows of the first `labels` intents (sorted), in file order."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_label in (("train", train), ("test", test)):
        with (BANKING77 / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        keep = sorted({row["category"] for row in rows})[:labels]
        counts: Counter[str] = Counter()
        picked = []
        for row in rows:
            if row["category"] in keep and counts[row["category"]] < per_label:
                counts[row["category"]] += 1
                picked.append(row)
        with (folder / f"{split}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, ["text", "category"])
            writer.writeheader()
            writer.writerows(picked)
    return folder


class OneAtATime:
    """The real model, fed one text per call: every text gets the same vector however the
    caller batches (int8 ONNX scales activations per batch), so two loops compare exactly."""

    def __init__(self, model):
        self.inner, self.name, self.backend = model, model.name, model.backend

    def encode(self, texts, batch_size=32, show_progress_bar=False):
        return np.vstack([self.inner.encode([text]) for text in texts])


def mteb_loop(texts, labels, test_texts, test_labels, model, samples_per_label, n_experiments):
    """mteb 1.12.75's AbsTaskClassification + logRegClassificationEvaluator, inlined."""
    np.random.seed(42)  # AbsTask.__init__
    x_test = model.encode(test_texts)
    scores, idxs = [], None
    for _ in range(n_experiments):
        if idxs is None:
            idxs = np.arange(len(labels))
        np.random.shuffle(idxs)
        counter: defaultdict[int, int] = defaultdict(int)
        x_sampled, y_sampled = [], []
        for i in idxs:
            if counter[labels[i]] < samples_per_label:
                x_sampled.append(texts[i])
                y_sampled.append(labels[i])
                counter[labels[i]] += 1
        np.random.seed(42)  # Evaluator.__init__, after the shuffle
        clf = LogisticRegression(random_state=42, max_iter=100)
        clf.fit(model.encode(x_sampled), y_sampled)
        predicted = clf.predict(x_test)
        scores.append(
            {
                "accuracy": accuracy_score(test_labels, predicted),
                "f1": f1_score(test_labels, predicted, average="macro"),
            }
        )
    return scores


@needs_shared_data
def test_sampling_matches_mtebs_global_seeding():
    labels = encode_labels(read_labelled(BANKING77 / "train.csv").labels, [])[0]
    ours = experiment_rows(labels, 8, 10)
    np.random.seed(42)
    idxs = np.arange(len(labels))
    for rows in ours:
        np.random.shuffle(idxs)
        np.random.seed(42)
        counter: defaultdict[int, int] = defaultdict(int)
        expected = []
        for i in idxs:
            if counter[labels[i]] < 8:
                expected.append(int(i))
                counter[labels[i]] += 1
        assert rows == expected
    assert all(len(rows) == 77 * 8 for rows in ours)
    assert len({tuple(sorted(rows)) for rows in ours}) == 10  # each experiment draws anew


@needs_shared_data
def test_protocol_matches_an_independent_mteb_loop(tmp_path, model):
    folder = banking_slice(tmp_path / "b77")
    encoder = OneAtATime(model)
    result = evaluate_classification(folder, encoder, samples_per_label=4, n_experiments=3)

    data = load_classification(folder)
    y_train, y_test = encode_labels(data.train.labels, data.test.labels)
    expected = mteb_loop(
        data.train.texts, y_train, data.test.texts, y_test, encoder, 4, n_experiments=3
    )
    for ours, theirs in zip(result["scores_per_experiment"], expected, strict=True):
        assert ours["accuracy"] == pytest.approx(theirs["accuracy"], abs=1e-12)
        assert ours["f1"] == pytest.approx(theirs["f1"], abs=1e-12)
    assert result["accuracy"] == pytest.approx(np.mean([s["accuracy"] for s in expected]))
    assert result["n_labels"] == 10 and result["n_test"] == 120
    assert result["n_train_embedded"] <= 3 * 10 * 4
    # Four examples per intent separate these ten intents well; chance is 0.1.
    assert 0.6 < result["accuracy"] <= 1.0
    assert {"f1_weighted", "model", "backend", "embed_seconds"} <= set(result)


def test_integer_labels_keep_their_numeric_order():
    train, test = encode_labels(["10", "2", "1", "2"], ["10"])
    assert train.tolist() == [2, 1, 0, 1] and test.tolist() == [2]
    train, _ = encode_labels(["b", "a", "c"], [])
    assert train.tolist() == [1, 0, 2]


def test_reader_errors_are_one_line(tmp_path):
    with pytest.raises(DatasetError, match="no data set folder"):
        load_classification(tmp_path / "nope")
    (tmp_path / "train.csv").write_text("text,label\nhello,a\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"has no column 'category' \(columns: text, label\)"):
        load_classification(tmp_path)
    (tmp_path / "train.csv").write_text("text,category\nhello,a\nbye,\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"train.csv:3: 'category' is empty"):
        read_labelled(tmp_path / "train.csv")
    (tmp_path / "train.csv").write_text("text,category\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="has no rows"):
        read_labelled(tmp_path / "train.csv")
    (tmp_path / "train.csv").write_text("", encoding="utf-8")
    with pytest.raises(DatasetError, match="is empty"):
        read_labelled(tmp_path / "train.csv")
    (tmp_path / "train.csv").write_text("text,category\nhello,a\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="missing .*test.csv"):
        load_classification(tmp_path)


def test_bad_protocol_options_and_one_class(tmp_path):
    (tmp_path / "train.csv").write_text("text,category\nhi,a\nho,a\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text("text,category\nhey,a\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="one class only"):
        evaluate_classification(tmp_path, "no-model-is-loaded-first")
    with pytest.raises(InvalidInputError, match="samples_per_label"):
        evaluate_classification(tmp_path, samples_per_label=0)
    with pytest.raises(InvalidInputError, match="n_experiments"):
        evaluate_classification(tmp_path, n_experiments=0)
