"""The four-topic corpus embedded once with the real default model, and a collection of it."""

from __future__ import annotations

import numpy as np
import pytest

from embedstack import Collection
from tests.analysis.corpus import LABELS, TEXTS


@pytest.fixture(scope="session")
def corpus_vectors(model) -> np.ndarray:
    return model.encode(TEXTS, batch_size=32)


@pytest.fixture(scope="session")
def corpus_kb(tmp_path_factory, model, corpus_vectors) -> Collection:
    """The corpus as a collection: ids "<topic>-<n>", metadata {"topic", "n"}. Read-only use."""
    kb = Collection.open(tmp_path_factory.mktemp("analysis") / "kb", model)
    kb.add(
        TEXTS,
        ids=[f"{topic}-{n}" for n, topic in enumerate(LABELS)],
        metadata=[{"topic": topic, "n": n} for n, topic in enumerate(LABELS)],
        embeddings=corpus_vectors,
    )
    yield kb
    kb.close()
