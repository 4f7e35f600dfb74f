"""Shared fixtures: the real default model (loaded once) and the shared evaluation data."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = (PROJECT / ".." / "shared" / "data").resolve()


_own_cache: list[str] = []


def pytest_configure(config):
    """Build ONNX files into a fresh cache per test run (subprocesses inherit it)."""
    if "EMBEDSTACK_CACHE_DIR" not in os.environ:
        _own_cache.append(tempfile.mkdtemp(prefix="embedstack-test-cache-"))
        os.environ["EMBEDSTACK_CACHE_DIR"] = _own_cache[0]


def pytest_unconfigure(config):
    for folder in _own_cache:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Settings are read once per process; a test that changes the environment reloads them,
    and the next test starts from the environment as it was."""
    yield
    from embedstack.settings import reload_settings

    reload_settings()


needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"evaluation data not found at {SHARED_DATA}"
)


@pytest.fixture(scope="session")
def model():
    from embedstack import load_model

    return load_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def sts_sentences() -> list[str]:
    """100 real, distinct sentences from the STS Benchmark test split."""
    path = SHARED_DATA / "stsbenchmark"
    files = sorted(path.glob("*test*"))
    if not files:
        pytest.skip(f"no STS-B test file under {path}")
    sentences: list[str] = []
    for line in files[0].read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 7:
            for sentence in fields[5:7]:
                if sentence not in sentences:
                    sentences.append(sentence)
        if len(sentences) >= 100:
            break
    return sentences[:100]


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
