"""The server's batcher counts tokens off the event loop, one tokenizer call for all waiting
requests, and a text it cannot count fails its own request only."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embedstack import load_model
from embedstack.server.batching import EmbeddingBatcher
from embedstack.server.metrics import Metrics
from embedstack.server.models import ServedModel


@pytest.fixture(scope="module")
def served():
    model = ServedModel(load_model("all-MiniLM-L6-v2", backend="onnx-int8"), 16384, Metrics())
    yield model
    model.close()


def test_the_batcher_counts_what_the_model_reads(served):
    texts = ["How do I change the PIN of my debit card?", "A man plays a flute.", "ok"]
    futures = [served.batcher.submit([text]) for text in texts]
    given = served.batcher.submit(["token ids were sent"], [7])  # counted by the caller
    results = [future.result(timeout=60) for future in futures]
    assert [r.tokens for r in results] == [[n] for n in served.token_counts(texts)]
    assert all(r.tokens[0] > 2 for r in results)  # [CLS] and [SEP] and the words
    for text, result in zip(texts, results, strict=True):
        np.testing.assert_allclose(result.vectors[0], served.model.encode(text), atol=1e-6)
    assert given.result(timeout=60).tokens == [7]


def test_a_text_that_cannot_be_counted_fails_its_own_request_only():
    calls: list[list[str]] = []
    release = threading.Event()

    def embed(texts: list[str]) -> np.ndarray:
        release.wait(10)  # hold the first batch so that the next requests queue up together
        return np.ones((len(texts), 4), dtype=np.float32)

    def count(texts: list[str]) -> list[int]:
        calls.append(texts)
        if "boom" in texts:
            raise ValueError("cannot count 'boom'")
        return [len(text) for text in texts]

    batcher = EmbeddingBatcher(embed, count, max_batch_tokens=1000)
    try:
        first = batcher.submit(["first"])
        waiting = [batcher.submit(["a"]), batcher.submit(["boom"]), batcher.submit(["ccc"])]
        release.set()
        assert first.result(timeout=10).tokens == [5]
        with pytest.raises(ValueError, match="boom"):
            waiting[1].result(timeout=10)
        assert waiting[0].result(timeout=10).tokens == [1]  # not failed with it
        assert waiting[2].result(timeout=10).tokens == [3]
        assert batcher.submit(["dd"]).result(timeout=10).tokens == [2]  # the worker lives on
    finally:
        release.set()
        batcher.close()
    # the waiting requests were counted in one call; after it failed, each on its own
    assert any({"a", "boom", "ccc"} <= set(texts) for texts in calls)
    assert ["boom"] in calls and ["a"] in calls
