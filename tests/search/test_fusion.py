"""Fusion and MMR against small cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from embedstack.errors import InvalidInputError
from embedstack.search.fusion import mmr, reciprocal_rank_fusion, weighted_fusion


def test_reciprocal_rank_fusion_by_hand():
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    keyword = [(3, 12.0), (4, 9.0)]
    fused = dict(reciprocal_rank_fusion([dense, keyword], k=60))
    assert fused[1] == pytest.approx(1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)  # in both lists: first overall
    assert fused[4] == pytest.approx(1 / 62)
    order = [item for item, _ in reciprocal_rank_fusion([dense, keyword])]
    assert order == [3, 1, 2, 4]  # 2 and 4 tie; ties keep first-appearance order


def test_reciprocal_rank_fusion_with_an_empty_list_keeps_the_other_order():
    dense = [(5, 0.2), (1, 0.1)]
    assert [i for i, _ in reciprocal_rank_fusion([dense, []])] == [5, 1]


def test_weighted_fusion_normalises_each_list():
    dense = [(1, 0.9), (2, 0.5), (3, 0.1)]  # normalised: 1, 0.5, 0
    keyword = [(3, 20.0), (2, 10.0)]  # normalised: 1, 0
    fused = dict(weighted_fusion([dense, keyword], [0.5, 0.5]))
    assert fused == pytest.approx({1: 0.5, 2: 0.25, 3: 0.5})
    heavy_keyword = dict(weighted_fusion([dense, keyword], [0.2, 0.8]))
    assert max(heavy_keyword, key=heavy_keyword.get) == 3
    with pytest.raises(InvalidInputError):
        weighted_fusion([dense, keyword], [1.0])


def test_mmr_skips_near_duplicates():
    a = np.array([1.0, 0.0, 0.0])
    a_copy = np.array([0.999, 0.0447, 0.0])
    b = np.array([0.0, 1.0, 0.0])
    vectors = np.stack([a, a_copy, b])
    relevance = np.array([1.0, 0.95, 0.6])
    assert mmr(relevance, vectors, 2, diversity=0.0) == [0, 1]  # relevance only
    assert mmr(relevance, vectors, 2, diversity=0.5) == [0, 2]  # the copy is redundant
    # By hand at diversity 0.5: copy = 0.5*0.875 - 0.5*0.999 < 0; b = 0.5*0 - 0.5*0 = 0.
    assert mmr(relevance, vectors, 3, diversity=1.0)[1] == 2
    with pytest.raises(InvalidInputError):
        mmr(relevance, vectors, 2, diversity=1.5)
