"""MTEB's clustering protocol on real 20 Newsgroups subject lines, checked against MTEB's own
steps (global seed 42, then MiniBatchKMeans) written out here."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import v_measure_score

from embedstack.errors import DatasetError, InvalidInputError
from embedstack.evaluation import evaluate_clustering, load_clustering
from embedstack.evaluation.clustering import draw_sets
from tests.conftest import SHARED_DATA, needs_shared_data

GROUPS = ("comp.graphics", "rec.autos", "sci.space", "talk.politics.guns", "soc.religion.christian")


def newsgroups_slice(path: Path, per_group: int = 60) -> Path:
    """`per_group` test-split posts of five distinct newsgroups, as .jsonl.gz, in file order."""
    counts = dict.fromkeys(GROUPS, 0)
    lines = []
    with gzip.open(SHARED_DATA / "20newsgroups" / "20news-bydate.jsonl.gz", "rt") as handle:
        for line in handle:
            record = json.loads(line)
            group = record["label"]
            if record["split"] == "test" and group in counts and counts[group] < per_group:
                counts[group] += 1
                lines.append(json.dumps({k: record[k] for k in ("split", "label", "subject")}))
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


@needs_shared_data
def test_v_measure_matches_mtebs_steps(tmp_path, model):
    path = newsgroups_slice(tmp_path / "news.jsonl.gz")
    result = evaluate_clustering(path, model, text_field="subject", label_field="label")

    data = load_clustering(path, "subject", "label")
    vectors = model.encode(data.texts, batch_size=32)
    np.random.seed(42)  # ClusteringEvaluator's Evaluator.__init__
    kmeans = MiniBatchKMeans(n_clusters=5, batch_size=500, n_init="auto").fit(vectors)
    expected = v_measure_score(data.labels, kmeans.labels_)
    assert result["v_measure"] == pytest.approx(expected, abs=1e-12)
    assert result["v_measures"] == [result["v_measure"]]
    assert result["n_labels"] == 5 and result["set_size"] == 300
    # Subject lines of five distinct groups cluster far above chance (~0 with shuffled labels).
    assert result["v_measure"] > 0.3
    shuffled = np.random.default_rng(0).permutation(data.labels).tolist()
    assert v_measure_score(shuffled, kmeans.labels_) < 0.05


@needs_shared_data
def test_subsets_each_embedded_once(tmp_path, model):
    path = newsgroups_slice(tmp_path / "news.jsonl.gz", per_group=40)
    result = evaluate_clustering(
        path, model, text_field="subject", split="test", sets=3, subset_size=120
    )
    assert len(result["v_measures"]) == 3 and result["set_size"] == 120
    assert result["v_measure"] == pytest.approx(np.mean(result["v_measures"]))
    assert result["n_embedded"] < 3 * 120  # sets overlap; a row is embedded once
    assert len(set(result["v_measures"])) == 3


def test_sets_are_seeded_sorted_draws():
    sets = draw_sets(1000, 3, 100)
    rng = np.random.RandomState(42)
    for rows in sets:
        assert rows.tolist() == sorted(rng.choice(1000, size=100, replace=False).tolist())
    assert len({tuple(rows) for rows in sets}) == 3
    assert draw_sets(50, 1, None)[0].tolist() == list(range(50))
    with pytest.raises(InvalidInputError, match="subset size below the 50 rows"):
        draw_sets(50, 2, None)
    with pytest.raises(InvalidInputError, match="sets must be at least 1"):
        draw_sets(50, 0, 10)


def test_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"data.jsonl:2: no column 'label'"):
        load_clustering(path)
    path.write_text('{"text": "a", "label": "x"}\nnot json\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"data.jsonl:2: not valid JSON"):
        load_clustering(path)
    path.write_text('{"text": "a", "label": "x"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"data.jsonl:1: no 'split' field"):
        load_clustering(path, split="test")
    with pytest.raises(DatasetError, match="missing"):
        load_clustering(tmp_path / "nope.jsonl")
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="unreadable"):
        load_clustering(tmp_path / "bad.jsonl.gz")


def test_one_label_refused_before_the_model_loads(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 1}\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="one label only"):
        evaluate_clustering(path, "no-model-is-loaded-first")
