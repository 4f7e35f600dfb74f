"""Clusterer: each method finds the four topics of real sentences; the estimator contract."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.metrics import v_measure_score
from sklearn.pipeline import Pipeline

from embedstack.analysis import Clusterer
from embedstack.errors import InvalidInputError
from tests.analysis.corpus import LABELS
from tests.conftest import unit_vectors


@pytest.mark.parametrize(
    "params",
    [
        {"method": "kmeans", "n_clusters": 4},
        {"method": "agglomerative", "n_clusters": 4},
        {"method": "agglomerative", "n_clusters": None, "distance_threshold": 1.2},
        {"method": "hdbscan", "min_cluster_size": 4},
    ],
)
def test_each_method_recovers_the_topics(corpus_vectors, params):
    clusterer = Clusterer(**params).fit(corpus_vectors)
    labels = clusterer.labels_
    assert v_measure_score(LABELS, labels) > 0.6
    assert clusterer.n_clusters_ == len(set(labels) - {-1}) >= 2
    # ids by decreasing size, outliers -1
    sizes = [int((labels == c).sum()) for c in range(clusterer.n_clusters_)]
    assert sizes == sorted(sizes, reverse=True)
    # centres are unit vectors and each member's nearest centre is mostly its own
    assert np.allclose(np.linalg.norm(clusterer.cluster_centers_, axis=1), 1, atol=1e-5)
    kept = labels != -1
    agree = clusterer.predict(corpus_vectors)[kept] == labels[kept]
    assert agree.mean() > 0.9


def test_kmeans_is_deterministic_and_follows_the_estimator_contract(corpus_vectors):
    first = Clusterer(n_clusters=4, random_state=7).fit(corpus_vectors)
    again = clone(first).fit(corpus_vectors)
    assert first.get_params()["n_clusters"] == 4 and not hasattr(clone(first), "labels_")
    np.testing.assert_array_equal(first.labels_, again.labels_)
    distances = first.transform(corpus_vectors)
    assert distances.shape == (len(corpus_vectors), 4)
    assert 0 < first.score(corpus_vectors) <= 1
    np.testing.assert_array_equal(first.fit_predict(corpus_vectors), first.labels_)
    # inside a Pipeline, after a reduction step
    pipeline = Pipeline([("pca", PCA(n_components=16)), ("cluster", Clusterer(n_clusters=4))])
    assert v_measure_score(LABELS, pipeline.fit_predict(corpus_vectors)) > 0.6


def test_kmeans_scales_to_many_vectors():
    vectors = unit_vectors(20_000, 64, seed=3)
    clusterer = Clusterer(n_clusters=50).fit(vectors)
    assert clusterer.labels_.shape == (20_000,) and clusterer.n_clusters_ == 50


@pytest.mark.parametrize(
    ("vectors", "params", "message"),
    [
        (unit_vectors(5, 8), {"n_clusters": 6}, "cannot make 6 clusters from 5 items"),
        (unit_vectors(5, 8), {"n_clusters": 0}, "n_clusters"),
        (unit_vectors(5, 8), {"method": "spectral"}, "method must be one of"),
        (np.full((4, 3), np.nan), {}, "NaN"),
        (np.zeros((4, 3)), {}, "all-zero"),
        (np.ones(8), {}, "2-D"),
        (np.zeros((0, 8)), {}, "at least 2"),
        (unit_vectors(5, 8), {"method": "hdbscan", "min_cluster_size": 9}, "min_cluster_size"),
        (unit_vectors(5, 8), {"method": "agglomerative", "distance_threshold": -1}, "positive"),
    ],
)
def test_bad_input_is_one_clear_error(vectors, params, message):
    with pytest.raises(InvalidInputError, match=message):
        Clusterer(**params).fit(vectors)


def test_predict_checks_dimensions(corpus_vectors):
    clusterer = Clusterer(n_clusters=4).fit(corpus_vectors)
    with pytest.raises(InvalidInputError, match="fitted on 384"):
        clusterer.predict(unit_vectors(2, 8))
