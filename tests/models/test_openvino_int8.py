"""`backend="openvino-int8"`: NNCF's static int8 on OpenVINO, built once, faithful, and the
same vector for a text whether it is embedded alone or in a batch (what lets it batch)."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from embedstack import load_model
from embedstack.errors import ModelLoadError
from embedstack.models.catalog import find_spec
from embedstack.models.onnx_export import onnx_file
from embedstack.models.openvino_int8 import import_nncf, quantized_ir
from embedstack.models.runtime_choice import calibration_texts
from embedstack.models.sbert_folder import read_sbert_folder
from embedstack.settings import reload_settings

# Real text that is not in calibration.txt (what NNCF calibrates on): sentences and questions
# as queries are, and passages as documents are chunked.
HELD_OUT = [
    "A man is playing a large flute.",
    "Three dogs are running through the snow.",
    "How do I change the PIN of my debit card?",
    "Why was my transfer declined yesterday?",
    "The committee postponed its vote until the next session.",
    "Who wrote the novel about a whale and a captain's obsession?",
    "Alveolar macrophages clear inhaled particles and pathogens from the lower airways; when "
    "they are depleted, bacterial clearance falls and inflammatory cytokines rise, as shown in "
    "mice exposed to cigarette smoke for twelve weeks before an intranasal challenge.",
    "Quarterly revenue rose 12 percent to $4.2 billion, driven by subscriptions, while operating "
    "expenses grew 9 percent; the company repurchased 3.1 million shares and kept its full-year "
    "outlook, citing currency headwinds in Europe and slower hardware sales.",
    "To compile the project, install a C compiler and CMake, run the configure script with the "
    "release preset, then build the library target; the tests need Python 3.11 and run with "
    "pytest from the repository root.",
]


@pytest.fixture(scope="module")
def int8_model():
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    return load_model("all-MiniLM-L6-v2", backend="openvino-int8")


def test_it_is_faithful_to_fp32_on_text_it_was_not_calibrated_on(int8_model):
    assert not set(HELD_OUT) & set(calibration_texts())
    fp32 = load_model("all-MiniLM-L6-v2", backend="onnx").encode(HELD_OUT)
    got = int8_model.encode(HELD_OUT)
    assert got.dtype == np.float32 and got.shape == fp32.shape
    cosine = (got * fp32).sum(axis=1)
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.97, cosine


def _prefixes(text: str) -> list[str]:
    words = text.split()
    return [" ".join(words[:n]) for n in range(3, len(words), 4)]


@pytest.mark.parametrize(
    "texts",
    [
        # padded to the passage's 60 word pieces with it, the question's vector moved by 2.5e-3
        # (cosine 0.99990) on Zen 4; now it goes in a batch of its own width
        [HELD_OUT[8], "How do I change the PIN"],
        HELD_OUT + [words for text in HELD_OUT for words in _prefixes(text)],  # many lengths
    ],
    ids=["a-question-after-a-passage", "many-lengths"],
)
def test_a_text_gets_the_same_vector_alone_or_in_a_batch(int8_model, texts):
    batched = int8_model.encode(texts, batch_size=64)
    alone = np.stack([int8_model.encode(text) for text in texts])
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-6)  # bit-identical on Zen 4


def test_the_quantised_model_is_built_once_and_reused(int8_model, monkeypatch):
    folder = read_sbert_folder(find_spec("all-MiniLM-L6-v2").locate())
    fp32 = onnx_file("all-MiniLM-L6-v2", folder.transformer_dir, quantize=False, keep_fp32=())
    texts = calibration_texts()
    ir = quantized_ir(fp32, folder.tokenizer_file, 256, texts)  # built by the fixture's load
    assert ir.is_file() and ir.with_suffix(".bin").is_file()
    built = ir.stat().st_mtime_ns

    def no_second_build(*args, **kwargs):
        raise AssertionError("quantised again")

    monkeypatch.setattr(import_nncf(), "quantize", no_second_build)
    assert quantized_ir(fp32, folder.tokenizer_file, 256, texts) == ir
    assert ir.stat().st_mtime_ns == built


def test_a_damaged_cached_model_is_rebuilt(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    monkeypatch.setenv("EMBEDSTACK_CACHE_DIR", str(tmp_path))
    reload_settings()
    first = load_model("all-MiniLM-L6-v2", backend="openvino-int8").encode(HELD_OUT[:3])
    (ir,) = tmp_path.glob("onnx/*/model-ov-int8-*.xml")
    weights = ir.with_suffix(".bin")
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])  # cut short, as by a full disk
    # OpenVINO's compiled-model cache would still answer (it keys the IR by its .xml alone)
    shutil.rmtree(tmp_path / "openvino")
    again = load_model("all-MiniLM-L6-v2", backend="openvino-int8").encode(HELD_OUT[:3])
    assert weights.stat().st_size == size  # built again
    assert (first * again).sum(axis=1).min() > 0.9999


def test_without_nncf_it_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` raises ImportError
    with pytest.raises(
        ModelLoadError, match=r"openvino-int8.*pip install 'embedstack\[openvino\]'"
    ):
        quantized_ir(tmp_path / "model.onnx", tmp_path / "tokenizer.json", 256, ["a text"])
