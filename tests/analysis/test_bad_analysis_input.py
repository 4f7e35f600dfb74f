"""Analysis input that used to crash or mislead: t-SNE on identical rows (a segfault), a
classifier report whose summary keys overwrote classes named like them, and classifier
parameters scikit-learn only rejected after every text was embedded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedstack.analysis import EmbeddingClassifier
from embedstack.analysis.projection import Projector
from embedstack.errors import InvalidInputError
from tests.cli.test_cli import assert_one_line_error, run

# Three topics, four texts each: the default model tells them apart easily.
TOPICS = {
    "n": ["The striker scored twice in the cup final.", "The goalkeeper saved a late penalty.",
          "Our team won the league on the last day.", "The coach praised his defenders."],
    "accuracy": ["Bake the bread for forty minutes.", "Whisk the eggs with sugar and butter.",
                 "Simmer the tomato sauce with garlic.", "Season the soup with salt and pepper."],
    "macro_f1": ["The CPU has eight cores and a large cache.", "Install the driver, then reboot.",
                 "The laptop's SSD reads at 3 GB per second.", "Update the router's firmware."],
}  # fmt: skip
TEXTS = [text for texts in TOPICS.values() for text in texts]
LABELS = [label for label, texts in TOPICS.items() for _ in texts]


@pytest.mark.parametrize(
    "vectors", [np.ones((5, 8)), np.zeros((5, 8)), np.full((6, 4), 0.3, dtype=np.float32)]
)
def test_tsne_refuses_identical_rows(vectors):
    # scikit-learn's PCA start used to kill the process (SIGSEGV, exit 139) on these.
    with pytest.raises(InvalidInputError, match="vectors are identical") as caught:
        Projector("tsne").fit_transform(vectors)
    assert "\n" not in str(caught.value)


def test_tsne_still_maps_rows_that_differ_only_in_length():
    scaled = np.arange(1, 6)[:, None] * np.ones((1, 8))  # the same direction: cosine 0 apart
    assert Projector("tsne").fit_transform(scaled).shape == (5, 2)


def test_report_keeps_classes_named_like_its_summary():
    clf = EmbeddingClassifier().fit(TEXTS, LABELS)
    report = clf.report(TEXTS, LABELS)
    assert set(report["classes"]) == {"n", "accuracy", "macro_f1"}
    assert all(scores["support"] == 4 for scores in report["classes"].values())
    assert report["n"] == 12 and isinstance(report["accuracy"], float)
    assert isinstance(report["macro_f1"], float)
    assert report["macro_f1"] == report["macro avg"]["f1-score"]
    json.dumps(report)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"C": 0}, "C must be a number above 0, got 0"),
        ({"C": -1.0}, "C must be a number above 0, got -1.0"),
        ({"C": float("nan")}, "C must be a number above 0"),
        ({"head": "knn", "n_neighbors": 0}, "n_neighbors must be a whole number ≥ 1, got 0"),
        ({"head": "knn", "n_neighbors": 2.5}, "n_neighbors must be a whole number ≥ 1"),
    ],
)
def test_bad_parameters_fail_before_fitting(params, message):
    vectors = np.random.default_rng(0).normal(size=(4, 8))
    with pytest.raises(InvalidInputError, match=message):
        EmbeddingClassifier(**params).fit_vectors(vectors, ["a", "b", "a", "b"])
    with pytest.raises(InvalidInputError, match=message):
        EmbeddingClassifier(**params).check_labels(["a", "b"])


@pytest.fixture
def labelled(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": t, "category": y}) + "\n"
            for t, y in zip(TEXTS, LABELS, strict=True)
        )
    )
    return data


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--C", "0"], "C must be a number above 0"),
     (["--C", "-1"], "C must be a number above 0"),
     (["--head", "knn", "--n-neighbors", "0"], "n_neighbors must be a whole number ≥ 1")],
)  # fmt: skip
def test_cli_bad_parameters_fail_before_embedding(tmp_path, labelled, options, message):
    result = run("classify", "train", "--data", labelled, "--out", tmp_path / "clf", *options)
    assert_one_line_error(result, message)
    assert "Encoding" not in result.stderr and not (tmp_path / "clf").exists()


def test_cli_train_refuses_an_existing_classifier_folder(tmp_path, labelled):
    out = tmp_path / "clf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run("classify", "train", "--data", labelled, "--out", out)
    assert_one_line_error(result, "already exists", "never overwrites")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    a_file = tmp_path / "clf.txt"
    a_file.write_text("mine")
    assert_one_line_error(run("classify", "train", "--data", labelled, "--out", a_file),
                          "already exists")  # fmt: skip


def test_cli_eval_keeps_classes_named_like_its_summary(tmp_path, labelled):
    out = tmp_path / "clf"
    out.mkdir()  # an empty folder is fine
    trained = run("classify", "train", "--data", labelled, "--out", out)
    assert trained.returncode == 0, trained.stderr
    evaluated = run("classify", "eval", out, "--data", labelled, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert set(report["classes"]) == {"n", "accuracy", "macro_f1"} and report["n"] == 12
    assert all(scores["support"] == 4 for scores in report["classes"].values())
    table = run("classify", "eval", out, "--data", labelled)
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    labels = {row[1] for row in rows if len(row) > 2}
    assert {"n", "accuracy", "macro_f1", "macro", "weighted"} <= labels
