"""The encoder reproduces sentence-transformers, on the real bundled model, with every backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from embedstack import load_model
from embedstack.errors import ModelNotFoundError
from embedstack.settings import reload_settings
from tests.conftest import PROJECT, needs_shared_data

LONG_TEXT = " ".join(
    f"Sentence {i} describes how protein folding affects enzyme kinetics in cells."
    for i in range(60)
)


@pytest.fixture(scope="module")
def reference(sts_sentences):
    """sentence-transformers' own embeddings of 100 STS-B sentences plus one over-long text."""
    from sentence_transformers import SentenceTransformer

    from embedstack.models import find_spec

    texts = [*sts_sentences, LONG_TEXT]  # the long one checks truncation at 256 word pieces
    model = SentenceTransformer(str(find_spec("all-MiniLM-L6-v2").locate()), device="cpu")
    return texts, model.encode(texts, batch_size=32, convert_to_numpy=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@needs_shared_data
@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_fp32_backends_match_sentence_transformers(reference, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    texts, expected = reference
    got = load_model("all-MiniLM-L6-v2", backend=backend).encode(texts, batch_size=32)
    assert len(texts) == 101
    assert cosines(got, expected).min() >= 0.9999


@needs_shared_data
@pytest.mark.parametrize("backend", ["auto", "onnx-int8"])
def test_default_and_int8_stay_close_to_fp32(reference, model, backend):
    """The default is `auto`: whichever runtime is fastest here, within the same fidelity."""
    texts, expected = reference
    encoder = model if backend == "auto" else load_model("all-MiniLM-L6-v2", backend=backend)
    similarity = cosines(encoder.encode(texts), expected)
    assert similarity.mean() >= 0.99 and similarity.min() >= 0.97


@pytest.mark.parametrize("backend, min_cosine", [("onnx", 0.99999), ("onnx-int8", 0.98)])
def test_output_is_normalised_float32_in_input_order(backend, min_cosine):
    """Dynamic int8 quantises activations per batch, so batch mates shift a vector slightly."""
    model = load_model("all-MiniLM-L6-v2", backend=backend)
    texts = ["a short one", "a noticeably longer sentence about retrieval systems", "mid length"]
    vectors = model.encode(texts, batch_size=2)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reversed_vectors = model.encode(texts[::-1], batch_size=2)
    assert cosines(reversed_vectors[::-1], vectors).min() >= min_cosine
    single = model.encode(texts[1])
    assert single.shape == (384,)
    assert float(single @ vectors[1]) >= min_cosine


def test_text_beyond_the_token_limit_is_truncated(model):
    assert model.max_tokens == 256
    longer = LONG_TEXT + " A completely different ending about volcanoes and lava."
    a, b = model.encode([LONG_TEXT, longer])
    assert float(a @ b) > 0.99999


def test_a_second_process_reuses_the_cached_onnx_files(tmp_path):
    """The first process exports and quantises; the next one loads without torch. Neither needs
    HF_HUB_OFFLINE (nothing asks the hub) nor changes the environment it was given."""
    script = textwrap.dedent(
        """
        import json, os, sys
        given = dict(os.environ)
        from embedstack import load_model
        vector = load_model("all-MiniLM-L6-v2").encode("cached models load fast")
        changed = sorted(k for k in {*given, *os.environ} if given.get(k) != os.environ.get(k)
                         and not k.startswith("TORCHINDUCTOR_"))  # torch's own, on first use
        print(json.dumps({"torch": "torch" in sys.modules, "v": vector[:4].tolist(),
                          "changed": changed}))
        """
    )
    env = {**os.environ, "EMBEDSTACK_CACHE_DIR": str(tmp_path)}
    for offline in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(offline, None)

    def load_in_subprocess() -> dict:
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return __import__("json").loads(done.stdout.strip().splitlines()[-1])

    first = load_in_subprocess()
    files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.onnx")}
    assert first["torch"] and len(files) == 2  # built: fp32 export, then int8
    assert first["changed"] == []
    second = load_in_subprocess()
    assert not second["torch"]  # nothing was exported again
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.onnx")} == files
    np.testing.assert_allclose(second["v"], first["v"], atol=1e-6)


def test_cached_onnx_files_are_keyed_by_weight_content(tmp_path, monkeypatch):
    """A reinstall (same bytes, new path and mtime) finds the files built before; new bytes
    do not. Damaged memo files are hashed again, and entries of deleted files are dropped."""
    from embedstack.models.onnx_export import weights_digest

    monkeypatch.setenv("EMBEDSTACK_CACHE_DIR", str(tmp_path / "cache"))
    reload_settings()
    weights = {}
    for name, content in [("first", b"w" * 4096), ("reinstall", b"w" * 4096), ("new", b"v" * 4096)]:
        weights[name] = tmp_path / name / "model.safetensors"
        weights[name].parent.mkdir()
        weights[name].write_bytes(content)
    os.utime(weights["reinstall"], ns=(10**18, 10**18))
    digests = {name: weights_digest([path]) for name, path in weights.items()}
    assert digests["first"] == digests["reinstall"] != digests["new"]

    memo = tmp_path / "cache" / "digests.json"
    assert len(json.loads(memo.read_text())) == 3
    weights["reinstall"].unlink()
    later = tmp_path / "later.safetensors"
    later.write_bytes(b"u" * 10)
    weights_digest([later])  # a new entry: the deleted file's entry goes
    assert sorted(json.loads(memo.read_text())) == sorted(
        f"{path.resolve()}|{path.stat().st_size}|{path.stat().st_mtime_ns}"
        for path in (weights["first"], weights["new"], later)
    )
    memo.write_text("{not json")
    assert weights_digest([weights["first"]]) == digests["first"]


def test_a_damaged_cache_file_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDSTACK_CACHE_DIR", str(tmp_path))
    reload_settings()
    expected = load_model("all-MiniLM-L6-v2", backend="onnx").encode("repair me")
    (cached,) = tmp_path.rglob("model.onnx")
    cached.write_bytes(b"not an onnx file")
    again = load_model("all-MiniLM-L6-v2", backend="onnx").encode("repair me")
    np.testing.assert_allclose(again, expected, atol=1e-6)
    assert not list(tmp_path.rglob("*.tmp"))


def test_unknown_model_lists_the_catalog():
    with pytest.raises(ModelNotFoundError) as info:
        load_model("no-such-model")
    assert "all-MiniLM-L6-v2" in str(info.value)


def test_unknown_backend_lists_the_choices():
    with pytest.raises(
        ModelNotFoundError,
        match="auto, onnx-int8, onnx, openvino, openvino-bf16, openvino-int8, torch",
    ):
        load_model("all-MiniLM-L6-v2", backend="tensorrt")


def test_batches_run_in_parallel_sessions_keep_their_rows():
    model = load_model("all-MiniLM-L6-v2", backend="onnx")
    texts = [f"sentence number {i} about {'retrieval ' * (i % 7)}" for i in range(24)]
    together = model.encode(texts, batch_size=1)  # 24 batches over the session pool
    one_by_one = np.stack([model.encode(text) for text in texts])
    assert cosines(together, one_by_one).min() >= 0.99999


def test_static_int8_batches_hold_one_padded_width_within_the_token_budget():
    from embedstack.models.encoder import _spans, padded_width

    lengths = sorted([3, 9, 10, 11, 12, 12, 13, 30, 33, 35, 70, 129, 250, 256], reverse=True)
    widths = [padded_width(n, 256) for n in lengths]
    for n, w in zip(lengths, widths, strict=True):
        assert n <= w <= 256 and (w - n) * 8 <= max(w, 32)  # under 1/8 padding past 32
    spans = list(_spans(widths, 32, 256))
    assert [i for a, b in spans for i in range(a, b)] == list(range(len(widths)))
    for a, b in spans:
        assert len(set(widths[a:b])) == 1 and (b - a == 1 or (b - a) * widths[a] <= 256)
    assert max(b - a for a, b in spans) > 1  # short texts still go together
    # without a budget: batch_size texts, padded to the longest
    assert list(_spans([9, 8, 7, 5, 3], 2, None)) == [(0, 2), (2, 4), (4, 5)]
