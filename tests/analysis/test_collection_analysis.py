"""Collection verbs: cluster, recommend, duplicates, map; bad input changes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import v_measure_score

from embedstack import Collection
from embedstack.analysis import Profile
from embedstack.errors import InvalidInputError, RecordNotFoundError
from tests.analysis.corpus import TEXTS


def stored(kb: Collection) -> tuple:
    ids = kb.ids()
    return ids, [(c.text, c.metadata) for c in kb.get(ids)], kb._store.vectors(ids).tobytes()


def test_cluster_reports_topics_with_ids(corpus_kb):
    report = corpus_kb.cluster(n_clusters=4)
    truth = [chunk.metadata["topic"] for chunk in report.chunks]
    assert v_measure_score(truth, report.labels) > 0.6
    found = report.to_dict()
    assert found["n_clusters"] == 4 and found["n_items"] == len(TEXTS)
    assert sum(c["size"] for c in found["clusters"]) == len(TEXTS)
    assert set(found["assignments"]) == set(corpus_kb.ids())
    first = found["clusters"][0]
    assert first["keywords"] and first["label"] and len(first["examples"]) == 3
    assert all(found["assignments"][e["id"]] == first["cluster"] for e in first["examples"])
    json.dumps(found)  # JSON-ready as it is


def test_cluster_honours_filters_and_defaults(corpus_kb):
    report = corpus_kb.cluster(filter={"topic": {"$in": ["space", "football"]}}, n_clusters=2)
    assert len(report.chunks) == 16
    groups = [{c.metadata["topic"] for c in report.members(t.cluster)} for t in report.topics]
    assert sorted(map(sorted, groups)) == [["football"], ["space"]]
    assert len(corpus_kb.cluster().topics) == 4  # √(32/2)
    hdbscan = corpus_kb.cluster("hdbscan", min_cluster_size=4)
    assert hdbscan.outliers + sum(t.size for t in hdbscan.topics) == len(TEXTS)


def test_recommend_by_ids_texts_vectors_and_profiles(corpus_kb, corpus_vectors):
    liked = ["space-8", "space-9"]
    hits = corpus_kb.recommend(liked, ["cooking-0"], k=5)
    assert [h.id for h in hits if h.id in liked] == []
    assert sum(h.metadata["topic"] == "space" for h in hits) >= 4
    assert all("recommend" in h.scores_by_stage for h in hits)
    by_text = corpus_kb.recommend([{"text": "a goalkeeper and a striker"}], k=3)
    assert all(h.metadata["topic"] == "football" for h in by_text)
    by_vector = corpus_kb.recommend([corpus_vectors[24]], strategy="best_score", k=3)
    assert by_vector[0].id == "programming-24"  # a vector is not a record: nothing is excluded
    profile = Profile().like("football-16", "football-17").unlike("space-8")
    for strategy in ("average_vector", "best_score", "sum_scores"):
        hits = corpus_kb.recommend(profile=profile, strategy=strategy, k=4)
        assert {h.metadata["topic"] for h in hits} == {"football"}, strategy
        assert not {"football-16", "football-17", "space-8"} & {h.id for h in hits}
    filtered = corpus_kb.recommend(liked, k=3, filter={"topic": "cooking"})
    assert {h.metadata["topic"] for h in filtered} == {"cooking"}


def test_duplicates_find_copies(tmp_path, model):
    with Collection.open(tmp_path / "kb", model) as kb:
        kb.add(
            ["The cat sat on the mat.", "The cat sat on the mat!", "Dogs bark at night.",
             "Markets fell on Monday.", "The market fell on Monday."],
            ids=["a", "b", "c", "d", "e"],
        )  # fmt: skip
        groups = kb.duplicates(0.9)
        assert [sorted(c.id for c in group) for group in groups] == [["a", "b"], ["d", "e"]]
        assert kb.duplicates(0.99999) == [] or kb.duplicates(0.99999)[0][0].id in "ab"


def test_map_writes_png_and_html_coloured_by_cluster_or_field(corpus_kb, tmp_path):
    png = corpus_kb.map(tmp_path / "map.png", method="pca")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = corpus_kb.map(tmp_path / "map.html", method="pca", color_by="topic")
    page = html.read_text()
    assert "football-16" in page and "http://" not in page.replace("http://www.w3.org", "")
    points = corpus_kb.map_points(method="pca", n_clusters=4, limit=10)
    assert len(points["points"]) == 10 and len(points["clusters"]) == 4
    assert {"id", "x", "y", "cluster", "text", "metadata"} <= set(points["points"][0])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda kb: kb.cluster(n_clusters=40), InvalidInputError, "cannot make 40 clusters"),
        (lambda kb: kb.cluster("spectral"), InvalidInputError, "method must be one of"),
        (lambda kb: kb.cluster(filter={"topic": "none"}), InvalidInputError, "no records matching"),
        (lambda kb: kb.recommend(["nope"]), RecordNotFoundError, "no record with id 'nope'"),
        (lambda kb: kb.recommend([[np.nan] * 384]), InvalidInputError, "NaN"),
        (lambda kb: kb.recommend([[0.1] * 8]), InvalidInputError, "dimension"),
        (lambda kb: kb.recommend([{"txt": "x"}]), InvalidInputError, "must be an id"),
        (lambda kb: kb.recommend(["space-8"], strategy="x"), InvalidInputError, "strategy"),
        (lambda kb: kb.recommend(), InvalidInputError, "at least one"),
        (lambda kb: kb.duplicates(2.0), InvalidInputError, "threshold"),
        (lambda kb: kb.map("map.svg", method="pca"), InvalidInputError, "svg"),
    ],
)
def test_bad_input_is_one_clear_error_and_changes_nothing(corpus_kb, call, error, message):
    before = stored(corpus_kb)
    with pytest.raises(error, match=message) as caught:
        call(corpus_kb)
    assert "\n" not in str(caught.value)
    assert stored(corpus_kb) == before


def test_an_empty_collection_says_so(tmp_path, model):
    with Collection.open(tmp_path / "empty", model) as kb:
        for call in (kb.cluster, kb.duplicates, lambda: kb.map(tmp_path / "m.png")):
            with pytest.raises(InvalidInputError, match="empty has no records to"):
                call()
