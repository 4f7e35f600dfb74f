"""bench/scale.py end to end on a small real set: real MiniLM vectors padded with generated ones,
two FAISS candidates each built and queried in a process of their own, against exact
search. The 1M run itself is recorded in docs/benchmarks.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))


def test_generated_vectors_have_the_real_statistics(model, sts_sentences):
    from scale_data import generated

    real = model.encode(sts_sentences)
    fake = generated(real, 5000)
    assert fake.shape == (5000, 384) and fake.dtype == np.float32
    assert np.allclose(np.linalg.norm(fake, axis=1), 1.0, atol=1e-5)
    # the spread that makes ANN search hard: cosine to the centroid and between vectors
    real_to_centre = real @ (real.mean(0) / np.linalg.norm(real.mean(0)))
    fake_to_centre = fake @ (real.mean(0) / np.linalg.norm(real.mean(0)))
    assert abs(real_to_centre.mean() - fake_to_centre.mean()) < 0.05
    assert abs((real @ real.T).mean() - (fake[:100] @ fake[:100].T).mean()) < 0.05


def test_scale_bench_reaches_the_recall_target(model, sts_sentences, tmp_path):
    pytest.importorskip("faiss")
    vectors = model.encode(sts_sentences)
    np.save(tmp_path / "minilm-scifact_queries.npy", vectors[:20])
    np.save(tmp_path / "minilm-scifact_corpus.npy", vectors[20:60])
    np.save(tmp_path / "minilm-news.npy", vectors[60:])
    results = tmp_path / "results.jsonl"
    engines = "faiss-ivfsq8-rerank,faiss-binary-rerank"
    out = subprocess.run(
        [sys.executable, str(BENCH / "scale.py"), "--n", "3000", "--held-out", "20",
         "--engines", engines, "--tune-queries", "40", "--time-limit", "1",
         "--workdir", str(tmp_path / "indexes"), "--json", str(results)],
        env={"EMBEDSTACK_BENCH_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    assert "CPU:" in out and "60 real MiniLM passage vectors + 2,940 generated" in out
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [row["name"] for row in rows] == engines.split(",")
    for row in rows:
        assert "error" not in row, row
        assert row["recall"] >= 0.95 and row["qps"] > 0 and row["disk_mb"] > 0, row
    assert "| faiss-binary-rerank |" in out and "+ 4 floats" in out
