"""`embedstack cluster | recommend | map | duplicates`, run as real subprocesses."""

from __future__ import annotations

import json

import pytest

from tests.analysis.corpus import LABELS, TEXTS
from tests.cli.test_cli import run


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-analysis")
    records = folder / "records.jsonl"
    records.write_text(
        "".join(
            json.dumps({"id": f"{topic}-{n}", "text": text, "topic": topic}) + "\n"
            for n, (text, topic) in enumerate(zip(TEXTS, LABELS, strict=True))
        )
    )
    assert run("add", folder / "kb", "--jsonl", records).returncode == 0
    return folder / "kb"


def test_cluster_prints_a_table_and_json(kb):
    table = run("cluster", kb, "--n", "4")
    assert table.returncode == 0, table.stderr
    assert "4 clusters of 32" in table.stdout and "•" in table.stdout
    found = json.loads(run("cluster", kb, "--n", "4", "--json").stdout)
    assert found["n_clusters"] == 4 and len(found["assignments"]) == 32
    assert all(c["keywords"] for c in found["clusters"])


def test_recommend_with_likes_and_a_profile(kb, tmp_path):
    profile = tmp_path / "me.json"
    result = run("recommend", kb, "--like", "space-8", "--unlike", "cooking-0", "--profile",
                 profile, "-k", "3", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 3 and all(h["metadata"]["topic"] == "space" for h in hits)
    assert json.loads(profile.read_text())["liked"] == ["space-8"]
    again = json.loads(run("recommend", kb, "--profile", profile, "-k", "3", "--json").stdout)
    assert [h["id"] for h in again] == [h["id"] for h in hits]  # the profile alone suffices
    by_text = run("recommend", kb, "--like-text", "penalty kick in the stadium", "-k", "2")
    assert by_text.returncode == 0 and "football-" in by_text.stdout


def test_map_and_duplicates(kb, tmp_path):
    result = run("map", kb, "--out", tmp_path / "kb.png", "--method", "pca", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["points"] == 32
    assert (tmp_path / "kb.png").read_bytes()[:4] == b"\x89PNG"
    groups = json.loads(run("duplicates", kb, "--threshold", "0.99", "--json").stdout)
    assert groups == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recommend", "{kb}", "--like", "nope"], "no record with id 'nope'"),
        (["recommend", "{kb}"], "give at least one --like"),
        (["cluster", "{kb}", "--n", "99"], "cannot make 99 clusters from 32 items"),
        (["cluster", "{kb}", "--method", "spectral"], "method must be one of"),
        (["map", "{kb}", "--out", "x.svg", "--method", "pca"], "svg"),
        (["duplicates", "{kb}", "--threshold", "0"], "threshold"),
        (["cluster", "{kb}", "--filter", '{"topic": "none"}'], "no records matching"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(kb, args, message):
    result = run(*(kb if arg == "{kb}" else arg for arg in args))
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
