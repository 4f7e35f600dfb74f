"""`embedstack classify train|predict|eval` and `embedstack eval classification|clustering`,
run as real subprocesses on real Banking77 and 20 Newsgroups rows."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli import run
from tests.conftest import needs_shared_data
from tests.evaluation.test_classification_eval import banking_slice
from tests.evaluation.test_clustering_eval import newsgroups_slice


def one_line_error(result, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def banking(tmp_path_factory):
    return banking_slice(tmp_path_factory.mktemp("b77"), labels=6, train=12, test=6)


@needs_shared_data
def test_train_predict_eval(tmp_path, banking):
    out = tmp_path / "clf"
    trained = run(
        "classify", "train", "--data", banking / "train.csv", "--out", out, "--head", "knn",
        "--n-neighbors", "3", "--json",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["n_texts"] == 72 and len(summary["classes"]) == 6 and summary["head"] == "knn"
    assert "Encoding" in trained.stderr  # the progress bar, on stderr
    assert (out / "classifier.json").is_file() and (out / "head.npz").is_file()

    predicted = run("classify", "predict", out, "--data", banking / "test.csv", "--json")
    assert predicted.returncode == 0, predicted.stderr
    rows = json.loads(predicted.stdout)["predictions"]
    assert len(rows) == 36 and set(rows[0]) == {"text", "label", "probability"}
    assert {row["label"] for row in rows} <= set(summary["classes"])

    evaluated = run("classify", "eval", out, "--data", banking / "test.csv", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    agree = sum(row["label"] == label for row, label in zip(rows, labels(banking), strict=True))
    assert report["accuracy"] == pytest.approx(agree / 36)
    assert report["accuracy"] > 0.7 and report["n"] == 36  # chance is 1/6

    table = run("classify", "eval", out, "--data", banking / "test.csv")
    assert table.returncode == 0 and "macro avg" in table.stdout and "precision" in table.stdout


def labels(folder) -> list[str]:
    from embedstack.evaluation import read_labelled

    return read_labelled(folder / "test.csv").labels


@needs_shared_data
def test_train_on_jsonl_with_other_columns(tmp_path, banking):
    from embedstack.evaluation import read_labelled

    rows = read_labelled(banking / "train.csv")
    data = tmp_path / "rows.jsonl"
    pairs = zip(rows.texts, rows.labels, strict=True)
    data.write_text("".join(json.dumps({"body": t, "intent": y}) + "\n" for t, y in pairs))
    trained = run(
        "classify", "train", "--data", data, "--text-column", "body", "--label-column", "intent",
        "--out", tmp_path / "clf",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "Trained a logistic classifier on 72 texts, 6 classes" in trained.stdout


def test_bad_input_is_one_line(tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("text,category\nhello,a\nhi,a\n")
    out = tmp_path / "clf"
    one_line_error(
        run("classify", "train", "--data", data, "--out", out, "--label-column", "intent"),
        "has no column 'intent' (columns: text, category)",
    )
    one_line_error(run("classify", "train", "--data", data, "--out", out), "one class only")
    (tmp_path / "empty.csv").write_text("")
    one_line_error(
        run("classify", "train", "--data", tmp_path / "empty.csv", "--out", out), "is empty"
    )
    (tmp_path / "header.csv").write_text("text,category\n")
    one_line_error(
        run("classify", "train", "--data", tmp_path / "header.csv", "--out", out), "has no rows"
    )
    one_line_error(
        run("classify", "train", "--data", data, "--out", out, "--head", "svm"),
        "unknown head 'svm'",
    )
    one_line_error(run("classify", "predict", tmp_path, "--data", data), "not a saved classifier")
    assert not out.exists()  # nothing written by a failed train


@needs_shared_data
def test_eval_classification_json(tmp_path, model):
    folder = banking_slice(tmp_path / "b77", labels=5, train=12, test=6)
    result = run(
        "eval", "classification", "--data", folder, "--n-experiments", "2",
        "--samples-per-label", "4", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert len(scores["scores_per_experiment"]) == 2
    assert 0.5 < scores["accuracy"] <= 1.0 and "f1" in scores
    assert scores["samples_per_label"] == 4
    assert scores["backend"] == model.backend  # what auto chose
    one_line_error(run("eval", "classification", "--data", tmp_path / "nope"), "no data set")


@needs_shared_data
def test_eval_clustering_json(tmp_path):
    path = newsgroups_slice(tmp_path / "news.jsonl.gz", per_group=30)
    result = run(
        "eval", "clustering", "--data", path, "--text-field", "subject", "--label-field",
        "label", "--sets", "2", "--subset-size", "100", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert len(scores["v_measures"]) == 2 and 0.1 < scores["v_measure"] < 1.0
    one_line_error(
        run("eval", "clustering", "--data", path, "--text-field", "body"), "no column 'body'"
    )
