"""Recommendation strategies as Qdrant defines them; profiles."""

from __future__ import annotations

import numpy as np
import pytest

from embedstack.analysis import Profile, recommend
from embedstack.analysis.recommendation import average_vector, strategy_scores
from embedstack.errors import InvalidInputError
from tests.analysis.corpus import LABELS
from tests.conftest import unit_vectors


def test_strategy_scores_follow_the_definitions():
    candidates, positive, negative = (
        unit_vectors(30, 16, 1),
        unit_vectors(2, 16, 2),
        unit_vectors(3, 16, 3),
    )
    to_pos, to_neg = candidates @ positive.T, candidates @ negative.T
    np.testing.assert_allclose(
        strategy_scores(candidates, positive, negative, "sum_scores"),
        to_pos.sum(1) - to_neg.sum(1),
        rtol=1e-5,
    )
    best = strategy_scores(candidates, positive, negative, "best_score")
    for row in range(30):
        p, n = to_pos[row].max(), to_neg[row].max()
        assert best[row] == pytest.approx(p if p > n else -(n**2), rel=1e-5)
    query = 2 * positive.mean(0) - negative.mean(0)
    np.testing.assert_allclose(average_vector(positive, negative), query / np.linalg.norm(query))
    np.testing.assert_allclose(
        strategy_scores(candidates, positive, negative[:0], "best_score"), to_pos.max(1)
    )


@pytest.mark.parametrize("strategy", ["average_vector", "best_score", "sum_scores"])
def test_recommendations_follow_the_liked_topic_and_leave_out_examples(corpus_vectors, strategy):
    space = [i for i, label in enumerate(LABELS) if label == "space"]
    cooking = [i for i, label in enumerate(LABELS) if label == "cooking"]
    liked, disliked = space[:2], cooking[:2]
    found = recommend(
        corpus_vectors, corpus_vectors[liked], corpus_vectors[disliked],
        strategy=strategy, k=4, exclude=liked + disliked,
    )  # fmt: skip
    rows = [row for row, _ in found]
    assert not set(rows) & set(liked + disliked)
    assert sum(LABELS[row] == "space" for row in rows) >= 3
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


def test_negatives_alone_work_for_score_strategies_not_for_the_average(corpus_vectors):
    found = recommend(corpus_vectors, negative=corpus_vectors[:3], strategy="best_score", k=5)
    assert all(LABELS[row] != "cooking" for row, _ in found)
    with pytest.raises(InvalidInputError, match="average_vector needs at least one positive"):
        recommend(corpus_vectors, negative=corpus_vectors[:3])
    with pytest.raises(InvalidInputError, match="at least one positive or negative"):
        recommend(corpus_vectors, strategy="sum_scores")
    with pytest.raises(InvalidInputError, match="strategy must be one of"):
        recommend(corpus_vectors, corpus_vectors[:1], strategy="nearest")
    with pytest.raises(InvalidInputError, match="8 dimensions"):
        recommend(corpus_vectors, unit_vectors(1, 8))


def test_profiles_keep_the_latest_opinion_and_round_trip(tmp_path):
    profile = Profile(max_items=3).like("a", "b").unlike("c").like("c", "d", "e")
    assert profile.liked == ["c", "d", "e"] and profile.disliked == []
    profile.unlike("d").forget("e")
    assert profile.liked == ["c"] and profile.disliked == ["d"]
    profile.save(tmp_path / "me.json")
    assert Profile.load(tmp_path / "me.json") == profile
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match="a profile is a JSON object"):
        Profile.load(tmp_path / "bad.json")
    with pytest.raises(InvalidInputError, match="record ids"):
        Profile().like(3)  # type: ignore[arg-type]
