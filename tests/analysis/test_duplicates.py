"""Near-duplicate groups with community_detection's semantics."""

from __future__ import annotations

import numpy as np
import pytest

from embedstack.analysis import near_duplicates
from embedstack.errors import InvalidInputError
from tests.conftest import unit_vectors


def reference_communities(vectors, threshold, min_size):
    """sentence-transformers' own community_detection, groups compared as sets."""
    import torch
    from sentence_transformers.util import community_detection

    found = community_detection(torch.from_numpy(vectors), threshold, min_size)
    return [sorted(group) for group in found]


def test_groups_match_community_detection_on_real_sentences(model):
    texts = [
        "The cat sat on the mat.", "A cat was sitting on the mat.", "The cat sat on a mat.",
        "Stock markets fell sharply on Monday.", "Stock markets fell steeply on Monday.",
        "The recipe needs two eggs.", "Quantum computers use qubits.",
    ]  # fmt: skip
    vectors = model.encode(texts)
    groups = near_duplicates(vectors, threshold=0.8)
    assert [sorted(g) for g in groups] == reference_communities(vectors, 0.8, 2)
    assert sorted(groups[0]) == [0, 1, 2] and sorted(groups[1]) == [3, 4]


def test_many_vectors_in_blocks_agree_with_the_reference():
    base = unit_vectors(300, 32, seed=5)
    noisy = base[:100] + 0.05 * unit_vectors(100, 32, seed=6)
    vectors = np.vstack([base, noisy / np.linalg.norm(noisy, axis=1, keepdims=True)])
    found = near_duplicates(vectors, threshold=0.95, min_size=2)
    assert [sorted(g) for g in found] == reference_communities(vectors, 0.95, 2)
    assert len(found) == 100


@pytest.mark.parametrize(
    ("threshold", "min_size", "message"),
    [(0, 2, "threshold"), (1.5, 2, "threshold"), (0.9, 1, "min_size"), (0.9, 2.5, "min_size")],
)
def test_bad_parameters(threshold, min_size, message):
    with pytest.raises(InvalidInputError, match=message):
        near_duplicates(unit_vectors(4, 8), threshold, min_size)
