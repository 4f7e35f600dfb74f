"""Evaluation input that cannot give a score: one clear error line (or exit code), never a
traceback, a crash in scipy or scikit-learn, or `NaN` in --json output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from embedstack.cli.common import print_json
from embedstack.errors import DatasetError, InvalidInputError
from embedstack.evaluation import evaluate_classification, evaluate_sts, load_sts
from embedstack.evaluation.sts import StsPairs
from tests.cli.test_cli import assert_one_line_error, run

MODEL = "glove-6b-50d"  # small and fast: any text model will do


def sts_file(folder, *rows: tuple[float, str, str], name: str = "sts-test.csv"):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"genre\tfile\tyear\t{n:04d}\t{score}\t{a}\t{b}" for n, (score, a, b) in enumerate(rows)
    ]
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def beir_folder(folder):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        '{"_id": "d1", "text": "Cats are small furry pets."}\n'
        '{"_id": "d2", "text": "Python is a programming language."}\n'
    )
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "furry pet"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return folder


def strict_json(text: str):
    """Python's json accepts bare NaN and Infinity; real JSON does not."""
    return json.loads(text, parse_constant=lambda token: pytest.fail(f"not JSON: {token}"))


# ---- STS --------------------------------------------------------------------------------------


def test_sts_one_pair_is_refused_before_the_model_loads(tmp_path):
    data = sts_file(tmp_path / "sts", (4.0, "A cat sits.", "A cat is sitting."))
    with pytest.raises(DatasetError, match=r"sts-test.csv has one sentence pair only"):
        load_sts(data)
    result = run("eval", "sts", "--data", data, "--model", MODEL)
    assert_one_line_error(result, "sts-test.csv", "one sentence pair")
    assert "Loading" not in result.stderr


def test_sts_non_utf8_file_is_one_error_line(tmp_path):
    (tmp_path / "sts-test.csv").write_bytes(b"a\tb\tc\td\t4.0\t\xff\xfe cat\tA\n" * 2)
    with pytest.raises(DatasetError, match=r"sts-test.csv: unreadable"):
        load_sts(tmp_path)
    assert_one_line_error(run("eval", "sts", "--data", tmp_path), "sts-test.csv", "unreadable")


def test_sts_constant_gold_scores_are_refused(tmp_path):
    data = sts_file(tmp_path / "sts", (4.0, "A cat sits.", "A cat."), (4.0, "A dog.", "A car."))
    with pytest.raises(DatasetError, match="same gold score"):
        load_sts(data)
    pairs = StsPairs(["A cat.", "A dog."], ["A cat.", "A car."], np.array([3.0, 3.0]))
    with pytest.raises(DatasetError, match="same gold score"):
        evaluate_sts(pairs, "no-model-is-loaded-first")
    result = run("eval", "sts", "--data", data, "--model", MODEL, "--json")
    assert_one_line_error(result, "same gold score")
    assert "NaN" not in result.stdout


class ConstantEncoder:
    """Gives every text the same vector, so every pair has the same cosine."""

    name = "constant"
    backend = "test"

    def encode(self, texts, **_):
        return np.ones((len(texts), 4), dtype=np.float32) / 2


def test_sts_constant_model_similarities_are_refused():
    pairs = StsPairs(["a", "b", "c"], ["d", "e", "f"], np.array([1.0, 2.0, 3.0]))
    with pytest.raises(InvalidInputError, match="constant gives every pair the same cosine"):
        evaluate_sts(pairs, ConstantEncoder())  # type: ignore[arg-type]


def test_sts_still_scores_good_pairs(tmp_path):
    data = sts_file(
        tmp_path / "sts",
        (5.0, "A cat sits on the mat.", "A cat is sitting on the mat."),
        (0.0, "A man plays guitar.", "The stock market fell today."),
        (2.5, "A dog runs in the park.", "A dog is in a garden."),
    )
    result = run("eval", "sts", "--data", data, "--model", MODEL, "--json")
    assert result.returncode == 0, result.stderr
    report = strict_json(result.stdout)
    assert report["n_pairs"] == 3 and -1 <= report["spearman"] <= 1


# ---- --json is always valid JSON ---------------------------------------------------------------


def test_print_json_writes_null_for_nan_and_infinity(capsys):
    print_json({"spearman": math.nan, "scores": [1.5, math.inf, (-math.inf, 2)], "n": 3})
    assert strict_json(capsys.readouterr().out) == {
        "spearman": None,
        "scores": [1.5, None, [None, 2]],
        "n": 3,
    }
    print_json(np.float64("nan"))
    assert strict_json(capsys.readouterr().out) is None


# ---- classification ----------------------------------------------------------------------------


def test_classification_test_labels_unseen_in_training_are_refused(tmp_path):
    (tmp_path / "train.csv").write_text(
        "text,category\nI love cats,pets\nDogs are great,pets\nPython code,tech\nRust,tech\n"
    )
    (tmp_path / "test.csv").write_text(
        "text,category\nI love cats,pets\nPython code,tech\nBananas,food\nKiwis,fruit\n"
    )
    with pytest.raises(DatasetError, match=r"test.csv has labels the train split lacks: 'food'"):
        evaluate_classification(tmp_path, "no-model-is-loaded-first")
    result = run("eval", "classification", "--data", tmp_path, "--model", MODEL)
    assert_one_line_error(result, "test.csv", "'food', 'fruit'")
    assert "Loading" not in result.stderr


# ---- leaderboard -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--models", ","], "no models to rank"),
        (["--models", MODEL, "--batch-size", "0"], "batch_size must be at least 1"),
    ],
)
def test_leaderboard_refuses_no_models_or_a_bad_batch_size(tmp_path, args, words):
    result = run("eval", "leaderboard", "--data", beir_folder(tmp_path / "beir"), *args)
    assert_one_line_error(result, words)
    assert f"[1/1] {MODEL}" not in result.stderr  # no model process started
    assert result.stdout == ""


def test_leaderboard_with_no_ranked_model_exits_1_after_the_table(tmp_path):
    data = beir_folder(tmp_path / "beir")
    result = run("eval", "leaderboard", "--data", data, "--models", "nosuch", "--json")
    assert result.returncode == 1, result.stderr
    rows = strict_json(result.stdout)
    assert [row["model"] for row in rows] == ["nosuch"] and rows[0]["error"]
    assert "error: no model could be ranked" in result.stderr
    assert "Traceback" not in result.stderr


def test_leaderboard_with_one_sts_pair_fails_before_any_model(tmp_path):
    data = beir_folder(tmp_path / "beir")
    sts = sts_file(tmp_path / "sts", (4.0, "A cat sits.", "A cat is sitting."))
    result = run("eval", "leaderboard", "--data", data, "--models", MODEL, "--sts", sts)
    assert_one_line_error(result, "one sentence pair")
    assert f"[1/1] {MODEL}" not in result.stderr
