"""The analysis routes against a real server on 127.0.0.1 and the real model: clusters with
labels, recommendations, near-duplicates and the 2-D map, and their one-line errors."""

from __future__ import annotations

import math
from collections import Counter

import httpx
import pytest

from tests.analysis.corpus import LABELS, TEXTS, TOPICS
from tests.server.conftest import API_KEY

NAME = "analysis-topics"
EMPTY = "analysis-empty"
# one near-copy of a football sentence: the only near-duplicate pair in the collection
DUPLICATE = "The striker scored twice in the second half and won the match."
IDS = [f"{label}-{i % 8}" for i, label in enumerate(LABELS)]


@pytest.fixture(scope="module")
def http(live_server) -> httpx.Client:
    with live_server.client() as client:
        for name in (NAME, EMPTY):
            created = client.post("/collections", json={"name": name})
            assert created.status_code == 201, created.text
        records = [
            {"id": id_, "text": text, "metadata": {"topic": label}}
            for id_, text, label in zip(IDS, TEXTS, LABELS, strict=True)
        ]
        records.append({"id": "duplicate", "text": DUPLICATE, "metadata": {"topic": "football"}})
        added = client.post(f"/collections/{NAME}/records", json={"records": records})
        assert added.status_code == 200, added.text
        yield client


def ok(answer: httpx.Response) -> dict:
    assert answer.status_code == 200, answer.text
    return answer.json()


def topic(id_: str) -> str:
    return "football" if id_ == "duplicate" else id_.rsplit("-", 1)[0]


# ---- cluster -----------------------------------------------------------------------------------


def test_kmeans_finds_the_four_topics_with_keywords_and_examples(http):
    report = ok(http.post(f"/collections/{NAME}/cluster", json={"n_clusters": 4}))
    assert report["method"] == "kmeans" and report["n_clusters"] == 4
    assert report["n_items"] == 33 and report["outliers"] == 0
    assert "assignments" not in report and report["seconds"] >= 0
    clusters = report["clusters"]
    assert sum(c["size"] for c in clusters) == 33
    assert [c["cluster"] for c in clusters] == [0, 1, 2, 3]
    for found in clusters:
        assert found["keywords"] and found["label"]
        assert all(isinstance(word, str) and score > 0 for word, score in found["keywords"])
        assert 1 <= len(found["examples"]) <= 3
        # the examples of a cluster share one topic
        assert len({topic(e["id"]) for e in found["examples"]}) == 1, found["examples"]

    report = ok(
        http.post(
            f"/collections/{NAME}/cluster",
            json={"n_clusters": 4, "assignments": True, "n_examples": 1, "n_words": 3},
        )
    )
    assignments = report["assignments"]
    assert set(assignments) == {*IDS, "duplicate"}
    by_cluster: dict[int, Counter] = {}
    for id_, cluster in assignments.items():
        by_cluster.setdefault(cluster, Counter())[topic(id_)] += 1
    purity = sum(c.most_common(1)[0][1] for c in by_cluster.values()) / len(assignments)
    assert purity >= 0.8, by_cluster
    assert all(len(c["examples"]) == 1 and len(c["keywords"]) <= 3 for c in report["clusters"])


def test_other_methods_and_a_filter(http):
    report = ok(
        http.post(
            f"/collections/{NAME}/cluster",
            json={"method": "agglomerative", "distance_threshold": 1.2},
        )
    )
    assert report["method"] == "agglomerative" and report["n_clusters"] >= 2
    assert sum(c["size"] for c in report["clusters"]) == 33

    report = ok(
        http.post(f"/collections/{NAME}/cluster", json={"method": "hdbscan", "min_cluster_size": 4})
    )
    assert report["method"] == "hdbscan"
    assert sum(c["size"] for c in report["clusters"]) + report["outliers"] == 33

    body = {"n_clusters": 4, "reduce_dims": 5, "assignments": True}
    report = ok(http.post(f"/collections/{NAME}/cluster", json=body))
    assert report["n_clusters"] == 4 and len(report["assignments"]) == 33

    report = ok(
        http.post(
            f"/collections/{NAME}/cluster",
            json={"n_clusters": 2, "filter": {"topic": "space"}, "assignments": True},
        )
    )
    assert report["n_items"] == 8 and report["n_clusters"] == 2
    assert {topic(id_) for id_ in report["assignments"]} == {"space"}


# ---- recommend ---------------------------------------------------------------------------------


def test_recommend_from_liked_and_disliked_examples(http):
    liked = ["space-0", "space-1"]
    found = ok(http.post(f"/collections/{NAME}/recommend", json={"positive": liked, "k": 5}))
    hits = found["hits"]
    assert len(hits) == 5 and found["seconds"] >= 0
    assert [topic(h["id"]) for h in hits[:3]] == ["space"] * 3, hits
    assert not set(liked) & {h["id"] for h in hits}  # the examples are never recommended
    assert set(hits[0]) == {"id", "score", "text", "metadata"}
    assert hits[0]["metadata"] == {"topic": "space"}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)

    for strategy in ("best_score", "sum_scores"):
        body = {"positive": ["cooking-0"], "negative": ["football-0"], "strategy": strategy}
        hits = ok(http.post(f"/collections/{NAME}/recommend", json=body | {"k": 3}))["hits"]
        assert len(hits) == 3 and topic(hits[0]["id"]) == "cooking", hits
        assert "cooking-0" not in {h["id"] for h in hits}

    # a text and a vector as examples; a filter
    body = {"positive": [{"text": "a bug in the Python parser"}], "k": 3}
    hits = ok(http.post(f"/collections/{NAME}/recommend", json=body))["hits"]
    assert topic(hits[0]["id"]) == "programming", hits
    vector = ok(http.post("/v1/embeddings", json={"input": "bake a cake in the oven"}))
    body = {"positive": [vector["data"][0]["embedding"], {"id": "cooking-1"}], "k": 20}
    hits = ok(
        http.post(f"/collections/{NAME}/recommend", json=body | {"filter": {"topic": "cooking"}})
    )["hits"]
    assert len(hits) == 7 and {topic(h["id"]) for h in hits} == {"cooking"}
    assert "cooking-1" not in {h["id"] for h in hits}


# ---- duplicates --------------------------------------------------------------------------------


def test_duplicates_finds_the_near_copy(http):
    found = ok(http.post(f"/collections/{NAME}/duplicates", json={"threshold": 0.9}))
    assert found["seconds"] >= 0
    groups = found["groups"]
    assert len(groups) == 1 and {r["id"] for r in groups[0]} == {"football-0", "duplicate"}
    assert {r["text"] for r in groups[0]} == {TOPICS["football"][0], DUPLICATE}
    assert ok(http.post(f"/collections/{NAME}/duplicates", json={}))["groups"] in ([], groups)
    assert (
        ok(http.post(f"/collections/{NAME}/duplicates", json={"threshold": 0.9, "min_size": 3}))[
            "groups"
        ]
        == []
    )
    body = {"threshold": 0.9, "filter": {"topic": {"$ne": "football"}}}
    assert ok(http.post(f"/collections/{NAME}/duplicates", json=body))["groups"] == []


# ---- map ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["pca", "umap", "tsne"])
def test_map_points_with_clusters(http, method):
    found = ok(http.post(f"/collections/{NAME}/map", json={"method": method, "n_clusters": 4}))
    assert found["method"] == method
    points = found["points"]
    assert len(points) == 33
    assert {p["id"] for p in points} == {*IDS, "duplicate"}
    for point in points:
        assert set(point) == {"id", "x", "y", "cluster", "text", "metadata"}
        assert math.isfinite(point["x"]) and math.isfinite(point["y"])
    assert len({(p["x"], p["y"]) for p in points}) > 30  # spread out, not one spot
    clusters = found["clusters"]
    assert [c["cluster"] for c in clusters] == [0, 1, 2, 3]
    assert all(c["label"] and c["size"] for c in clusters)
    assert Counter(p["cluster"] for p in points) == {c["cluster"]: c["size"] for c in clusters}


def test_map_limit_and_filter(http):
    found = ok(http.post(f"/collections/{NAME}/map", json={"method": "pca", "limit": 10}))
    assert len(found["points"]) == 10
    found = ok(
        http.post(f"/collections/{NAME}/map", json={"method": "pca", "filter": {"topic": "space"}})
    )
    assert {p["metadata"]["topic"] for p in found["points"]} == {"space"}
    assert len(found["points"]) == 8


# ---- bad input ---------------------------------------------------------------------------------

BAD = [
    ("recommend", {"positive": ["space-0"], "strategy": "best_of"}, 422, "strategy"),
    ("recommend", {"positive": ["space-0", "no-such-id"]}, 404, "no-such-id"),
    ("recommend", {"positive": [{"id": "no-such-id"}]}, 404, "no-such-id"),
    ("recommend", {}, 422, "at least one positive or negative"),
    ("recommend", {"negative": ["space-0"]}, 422, "average_vector needs"),
    ("recommend", {"positive": [[0.1] * 10]}, 422, "dimension"),
    ("recommend", {"positive": [[0.0] * 384]}, 422, "zeros"),
    ("recommend", {"positive": [{"id": "space-0", "text": "x"}]}, 422, "positive"),
    ("recommend", '{"positive": [{"text": "\\ud800"}]}', 422, "not valid Unicode"),
    ("recommend", {"positive": ["space-0"], "k": 0}, 422, "k"),
    ("recommend", {"positive": ["space-0"], "filter": {"topic": {"$near": 1}}}, 422, "$near"),
    ("cluster", {"n_clusters": 40}, 422, "cannot make 40 clusters from 33 items"),
    ("cluster", {"method": "spectral"}, 422, "method"),
    ("cluster", {"method": "hdbscan", "min_cluster_size": 50}, 422, "min_cluster_size"),
    ("cluster", {"n_clusters": 0}, 422, "n_clusters"),
    ("cluster", {"clusters": 4}, 422, "clusters"),
    ("cluster", {"reduce_dims": 0}, 422, "reduce_dims"),
    ("cluster", {"reduce_dims": "some"}, 422, "reduce_dims"),
    ("cluster", {"filter": {"topic": "chess"}}, 422, "no records matching the filter"),
    ("duplicates", {"threshold": 0}, 422, "threshold"),
    ("duplicates", {"threshold": 1.5}, 422, "threshold"),
    ("duplicates", {"min_size": 1}, 422, "min_size"),
    ("map", {"method": "mds"}, 422, "method"),
    ("map", {"limit": 20_001}, 422, "limit"),
    ("map", {"n_clusters": 34, "method": "pca"}, 422, "cannot make 34 clusters"),
]


def post(http: httpx.Client, path: str, body: dict | str) -> httpx.Response:
    """POST `body` as JSON; a str is sent as it is (JSON that httpx cannot encode)."""
    if isinstance(body, str):
        return http.post(path, content=body, headers={"Content-Type": "application/json"})
    return http.post(path, json=body)


def records(http: httpx.Client, name: str) -> dict:
    return ok(http.get(f"/collections/{name}/records", params={"limit": 1000}))


def check_error(answer: httpx.Response, status: int, fragment: str) -> dict:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"], error
    assert "\n" not in error["message"]
    return error


@pytest.mark.parametrize(("route", "body", "status", "fragment"), BAD)
def test_bad_input_is_a_one_line_error_and_changes_nothing(http, route, body, status, fragment):
    before = records(http, NAME)
    error = check_error(post(http, f"/collections/{NAME}/{route}", body), status, fragment)
    if status == 404:
        assert error["code"] == "record_not_found"
    assert records(http, NAME) == before


def test_nan_and_infinity_in_a_vector(http):
    before = records(http, NAME)
    vector = ", ".join(["0.1"] * 383)
    for bad in ("NaN", "Infinity"):
        body = f'{{"positive": [[{vector}, {bad}]]}}'
        check_error(post(http, f"/collections/{NAME}/recommend", body), 422, "NaN or infinite")
    assert records(http, NAME) == before


@pytest.mark.parametrize(
    ("route", "body"),
    [("cluster", {}), ("map", {"method": "pca"}), ("duplicates", {})],
)
def test_an_empty_collection_is_refused(http, route, body):
    check_error(http.post(f"/collections/{EMPTY}/{route}", json=body), 422, "has no records")
    assert records(http, EMPTY) == {"total": 0, "records": []}


def test_missing_collections_and_the_api_key(http, keyed_server):
    bodies = {"cluster": {}, "recommend": {"positive": ["x"]}, "duplicates": {}, "map": {}}
    for route, body in bodies.items():
        answer = http.post(f"/collections/nowhere/{route}", json=body)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "collection_not_found"
    with keyed_server.client() as anonymous, keyed_server.client(API_KEY) as keyed:
        for route in ("cluster", "recommend", "duplicates", "map"):
            answer = anonymous.post(f"/collections/nowhere/{route}", json={})
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"]["code"] == "invalid_api_key"
        assert keyed.post("/collections/nowhere/map", json={}).status_code == 404
