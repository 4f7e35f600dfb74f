"""The model leaderboard on a real (small) SciFact slice, with the fast models and failing ones."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from embedstack.evaluation.beir import BeirDataset
from embedstack.evaluation.leaderboard import (
    INSTALLED,
    Leaderboard,
    cache_state,
    leaderboard,
    model_list,
    subsample,
)
from tests.conftest import needs_shared_data
from tests.evaluation.test_retrieval import scifact_slice

FAST_MODELS = ["all-MiniLM-L6-v2", "paraphrase-MiniLM-L3-v2", "glove-6b-50d"]


@pytest.fixture(scope="module")
def scifact(tmp_path_factory):
    return scifact_slice(tmp_path_factory.mktemp("leaderboard") / "scifact", 20, 200)


@pytest.fixture(scope="module")
def board(scifact) -> Leaderboard:
    not_a_model = scifact.parent / "not-a-model"  # exists, so it fails in its own process
    not_a_model.mkdir()
    (not_a_model / "README.txt").write_text("no weights here")
    missing = scifact.parent / "no-such-model"
    models = [*FAST_MODELS, "bogus-model", str(missing), str(not_a_model)]
    return leaderboard(scifact, models)


@needs_shared_data
def test_ranks_models_by_ndcg_and_measures_each(board):
    scored = [row for row in board if row.error is None]
    assert [row.model for row in scored][0] == board.best.model
    assert sorted(row.model for row in scored) == sorted(FAST_MODELS)
    ndcgs = [row.ndcg_at_10 for row in scored]
    assert ndcgs == sorted(ndcgs, reverse=True)
    for row in scored:
        assert 0 < row.ndcg_at_10 <= 1 and 0 < row.recall_at_100 <= 1
        assert row.docs_per_s > 0 and row.queries_per_s > 0 and row.query_ms > 0
        assert row.bytes_per_vector == 4 * row.dim
        assert 0 < row.memory_mb < 4096 and row.load_s >= 0
        assert row.n_queries == 20 and row.n_docs == board.n_docs >= 200
    by_name = {row.model: row for row in board}
    assert (by_name["glove-6b-50d"].dim, by_name["all-MiniLM-L6-v2"].dim) == (50, 384)
    # A transformer beats a bag of word vectors on SciFact by far (full corpus: 0.645 vs ~0.2).
    assert by_name["all-MiniLM-L6-v2"].ndcg_at_10 > by_name["glove-6b-50d"].ndcg_at_10 + 0.1


@needs_shared_data
def test_models_that_cannot_run_are_rows_with_a_reason(board):
    failed = board.rows[len(FAST_MODELS) :]
    assert len(board) == len(FAST_MODELS) + 3
    assert all(row.error and row.ndcg_at_10 is None for row in failed)
    bogus, missing, not_a_model = failed  # in the order asked, after the ranked ones
    assert "unknown model 'bogus-model'" in bogus.error and "all-MiniLM-L6-v2" in bogus.error
    assert missing.error.startswith("no model folder or file at ")
    assert not_a_model.error.startswith("could not load: ")


@needs_shared_data
def test_rows_as_dicts_html_and_terminal_table(board):
    from embedstack.cli.evaluation import print_leaderboard

    rows = json.loads(json.dumps(board.to_dicts()))
    assert [row["model"] for row in rows] == [row.model for row in board]
    assert {"ndcg_at_10", "recall_at_100", "query_ms", "memory_mb", "error"} <= rows[0].keys()
    page = board._repr_html_()
    assert page.startswith("<table") and page.count("<tr") == len(board) + 1
    assert "★ all-MiniLM-L6-v2</td>" in page  # the best model, marked
    assert "unknown model &#x27;bogus-model&#x27;" in page  # escaped
    console = Console(file=io.StringIO(), width=250)
    print_leaderboard(board, console)
    table = console.file.getvalue()
    assert "nDCG@10" in table and "memory MB" in table and "not ranked because" in table
    assert table.index("all-MiniLM-L6-v2") < table.index("glove-6b-50d") < table.index("bogus")


@needs_shared_data
def test_cli_json_with_max_docs(scifact):
    from embedstack.cli.app import app

    args = ["eval", "leaderboard", "--data", str(scifact), "--models", "glove-6b-50d,nope"]
    result = CliRunner().invoke(app, [*args, "--max-docs", "40", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["model"] for row in rows] == ["glove-6b-50d", "nope"]
    assert rows[0]["n_docs"] >= 40 and 0 < rows[0]["ndcg_at_10"] <= 1
    assert rows[1]["error"].startswith("unknown model 'nope'")
    assert "--max-docs" in result.stderr  # the note goes to stderr, stdout stays JSON


def test_subsample_keeps_every_judged_document():
    corpus = {f"d{i}": f"text {i}" for i in range(100)}
    qrels = {"q1": {"d5": 1, "d70": 0}, "q2": {"d99": 2, "missing": 1}}
    data = BeirDataset(corpus=corpus, queries={"q1": "a", "q2": "b"}, qrels=qrels)
    small = subsample(data, 10)
    assert len(small.corpus) == 10 and {"d5", "d70", "d99"} <= small.corpus.keys()
    assert list(small.corpus) == [d for d in corpus if d in small.corpus]  # corpus order
    assert small.corpus == subsample(data, 10).corpus  # seeded
    assert len(subsample(data, 2).corpus) == 3  # judged documents are never dropped


def test_model_list_expands_installed_and_drops_repeats():
    names, _ = model_list(f"glove-6b-50d, {INSTALLED},./mine,glove-6b-50d")
    assert names[0] == "glove-6b-50d" and names[-1] == "./mine"
    assert names.count("glove-6b-50d") == 1 and "all-MiniLM-L6-v2" in names
    assert model_list(None)[0] == model_list(INSTALLED)[0]


def test_cache_state_sees_files_a_load_builds(tmp_path, monkeypatch):
    from embedstack.settings import reload_settings

    monkeypatch.setenv("EMBEDSTACK_CACHE_DIR", str(tmp_path))
    reload_settings()
    before = cache_state()
    (tmp_path / "build.lock").write_text("")  # locks come and go: ignored
    assert cache_state() == before
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"weights")
    assert [(path, size) for path, size, _ in cache_state() - before] == [("onnx/model.onnx", 7)]


def test_cli_bad_data_or_mode_fails_before_any_model(tmp_path):
    from embedstack.cli.app import app

    missing = CliRunner().invoke(app, ["eval", "leaderboard", "--data", str(tmp_path)])
    assert missing.exit_code == 2 and missing.stderr.startswith("error: missing ")
    args = ["eval", "leaderboard", "--data", str(tmp_path), "--mode", "sparse"]
    assert "mode must be one of" in CliRunner().invoke(app, args).stderr
