"""Models declare what they can do; callers (reranking, the cache) ask, instead of probing."""

from __future__ import annotations

import numpy as np
import pytest

from embedstack.errors import InvalidInputError
from embedstack.models import TOKEN_EMBEDDINGS, TOKENIZER, WORD_VECTORS, BaseEmbeddingModel
from embedstack.models.base import as_token_embedder, as_tokenized, as_word_vectors
from embedstack.models.cache import CachedEncoder, EmbeddingCache
from embedstack.search.rerank import LateInteractionReranker, load_reranker
from tests.models.toy_models import HashingModel


def test_a_transformer_declares_token_vectors_and_a_tokenizer(model):
    assert isinstance(model, BaseEmbeddingModel)
    assert model.capabilities == {TOKEN_EMBEDDINGS, TOKENIZER}
    assert model.modality == "text" and not model.asymmetric
    assert as_tokenized(model).tokenizer_file.is_file() and as_word_vectors(model) is None
    np.testing.assert_array_equal(model.encode_query("same"), model.encode_document("same"))


def test_the_cache_passes_capabilities_through(tmp_path, model):
    cached = CachedEncoder(model, EmbeddingCache(tmp_path / "cache.db"))
    assert cached.capabilities == model.capabilities and cached.modality == "text"
    assert cached.tokenizer_file == model.tokenizer_file
    tokens, mask = cached.token_embeddings(["late interaction"])
    expected, expected_mask = model.token_embeddings(["late interaction"])
    np.testing.assert_array_equal(tokens, expected)
    np.testing.assert_array_equal(mask, expected_mask)


def test_builtin_reranker_accepts_a_cached_transformer(tmp_path, model):
    cached = CachedEncoder(model, EmbeddingCache(tmp_path / "cache.db"))
    reranker = load_reranker("builtin", cached)
    assert isinstance(reranker, LateInteractionReranker)
    texts = ["The printer jams.", "Lunch is at noon."]
    np.testing.assert_allclose(
        reranker.score("printer jam", texts),
        LateInteractionReranker(model).score("printer jam", texts),
        atol=1e-6,
    )


def test_a_model_without_token_vectors_is_refused_clearly(tmp_path):
    plain = HashingModel("hash-16", 16)
    cached = CachedEncoder(plain, EmbeddingCache(tmp_path / "cache.db"))
    assert plain.capabilities == frozenset() == cached.capabilities
    assert as_token_embedder(cached) is None
    for candidate in (plain, cached, None):
        with pytest.raises(InvalidInputError, match="needs a transformer model with token"):
            load_reranker("builtin", candidate)
    with pytest.raises(InvalidInputError, match="hash-16 has no token vectors"):
        cached.token_embeddings(["text"])
    with pytest.raises(InvalidInputError, match="not a word-vector model"):
        cached.most_similar("word")


def test_capability_names_are_the_documented_ones():
    assert (TOKEN_EMBEDDINGS, TOKENIZER, WORD_VECTORS) == (
        "token_embeddings",
        "tokenizer",
        "word_vectors",
    )
