"""The encoder reproduces sentence-transformers exactly, on the real bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from embedstack import load_model
from embedstack.errors import ModelNotFoundError
from tests.conftest import needs_shared_data

LONG_TEXT = " ".join(
    f"Sentence {i} describes how protein folding affects enzyme kinetics in cells."
    for i in range(60)
)


@needs_shared_data
def test_encode_matches_sentence_transformers(model, sts_sentences):
    from sentence_transformers import SentenceTransformer

    from embedstack.models import find_spec

    texts = [*sts_sentences, LONG_TEXT]  # the long one checks truncation at 256 word pieces
    reference = SentenceTransformer(str(find_spec("all-MiniLM-L6-v2").locate()), device="cpu")
    expected = reference.encode(texts, batch_size=32, convert_to_numpy=True)
    got = model.encode(texts, batch_size=32)
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert len(texts) == 101
    assert cosines.min() >= 0.9999


def test_output_is_normalised_float32_in_input_order(model):
    texts = ["a short one", "a noticeably longer sentence about retrieval systems", "mid length"]
    vectors = model.encode(texts, batch_size=2)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reversed_vectors = model.encode(texts[::-1], batch_size=2)
    np.testing.assert_allclose(reversed_vectors[::-1], vectors, atol=1e-5)
    single = model.encode(texts[1])
    assert single.shape == (384,)
    np.testing.assert_allclose(single, vectors[1], atol=1e-5)


def test_text_beyond_the_token_limit_is_truncated(model):
    assert model.max_tokens == 256
    longer = LONG_TEXT + " A completely different ending about volcanoes and lava."
    a, b = model.encode([LONG_TEXT, longer])
    assert float(a @ b) > 0.99999


def test_unknown_model_lists_the_catalog():
    with pytest.raises(ModelNotFoundError) as info:
        load_model("no-such-model")
    assert "all-MiniLM-L6-v2" in str(info.value)
