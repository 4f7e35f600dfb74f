"""Reranking with a CrossEncoder folder the test builds itself (none ships with weights)."""

from __future__ import annotations

import numpy as np
import pytest

from embedstack import Collection
from embedstack.errors import InvalidInputError, ModelNotFoundError
from embedstack.models import find_spec
from tests.search.test_hybrid import DOCS


@pytest.fixture(scope="module")
def cross_encoder_folder(tmp_path_factory):
    """A MiniLM cross-encoder (bundled encoder weights + a seeded, untrained scoring head)."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(
        str(find_spec("all-MiniLM-L6-v2").locate()),
        num_labels=1,
        device="cpu",
        local_files_only=True,  # offline without touching HF_HUB_OFFLINE
    )
    folder = tmp_path_factory.mktemp("cross-encoder")
    model.save(str(folder))
    return folder, model


def test_rerank_orders_by_the_cross_encoder(tmp_path, model, cross_encoder_folder):
    folder, reference = cross_encoder_folder
    with Collection.open(tmp_path / "kb", model) as kb:
        kb.add(list(DOCS.values()), ids=list(DOCS))
        query = "the copier needs a new fuser"
        hits = kb.search(query, k=4, rerank=str(folder))
        expected = reference.predict([(query, hit.text) for hit in hits])
        scores = np.array([hit.score for hit in hits])
        np.testing.assert_allclose(
            scores, expected, rtol=1e-4, atol=1e-5
        )  # same model, same scores
        assert list(scores) == sorted(scores, reverse=True)
        assert [h.scores_by_stage["rerank_rank"] for h in hits] == [1, 2, 3, 4]
        assert all("hybrid_rank" in h.scores_by_stage for h in hits)


def test_bad_rerankers(tmp_path, model, cross_encoder_folder):
    with Collection.open(tmp_path / "kb", model) as kb:
        kb.add(["some text"], ids=["a"])
        with pytest.raises(InvalidInputError, match="unknown reranker"):
            kb.search("text", rerank="no-such-model")
        with pytest.raises(ModelNotFoundError, match="no config.json"):
            kb.search("text", rerank=str(tmp_path))
        with pytest.raises(InvalidInputError, match="query text"):
            kb.search(np.ones(384, dtype=np.float32), rerank=str(cross_encoder_folder[0]))
