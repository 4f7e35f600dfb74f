"""Models registered by path: a sentence-transformers folder, or an ONNX file with its tokenizer."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from embedstack import Collection, load_model
from embedstack.errors import ModelNotFoundError
from embedstack.models import find_spec

TEXTS = ["a local model folder", "loaded by its path"]


@pytest.fixture(scope="module")
def catalog_onnx():
    return load_model("all-MiniLM-L6-v2", backend="onnx")


def test_sentence_transformers_folder_by_path(tmp_path, catalog_onnx):
    folder = tmp_path / "my-minilm"
    shutil.copytree(find_spec("all-MiniLM-L6-v2").locate(), folder)
    model = load_model(str(folder), backend="onnx")
    assert model.name == str(folder.resolve()) and model.dim == 384
    np.testing.assert_allclose(model.encode(TEXTS), catalog_onnx.encode(TEXTS), atol=1e-5)
    with Collection.open(tmp_path / "kb", str(folder)) as kb:
        kb.add(TEXTS, ids=["a", "b"])
    with Collection.open(tmp_path / "kb") as kb:  # reopens with the recorded path
        assert kb.config.model == str(folder.resolve())
        assert kb.search("model loaded from a path", k=1)[0].id == "b"


def test_onnx_file_by_path(tmp_path, catalog_onnx):
    from embedstack.models.onnx_export import cache_root

    # the fp32 export the catalog model built (the fixture loaded it)
    (exported,) = list(cache_root().glob("onnx/all-MiniLM-L6-v2-*/model.onnx"))
    shutil.copy(exported, tmp_path / "model.onnx")
    shutil.copy(find_spec("all-MiniLM-L6-v2").locate() / "tokenizer.json", tmp_path)
    model = load_model(str(tmp_path / "model.onnx"))
    assert model.dim == 384
    np.testing.assert_allclose(model.encode(TEXTS), catalog_onnx.encode(TEXTS), atol=1e-5)


def test_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelNotFoundError, match="not a sentence-transformers folder"):
        load_model(str(tmp_path))


def test_an_onnx_file_that_is_not_a_model(tmp_path):
    shutil.copy(find_spec("all-MiniLM-L6-v2").locate() / "tokenizer.json", tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ModelNotFoundError, match="ONNX Runtime cannot load"):
        load_model(str(tmp_path / "model.onnx"))


def test_a_folder_with_prompts_reads_them_before_each_text(tmp_path, catalog_onnx):
    """sentence-transformers' prompts (config_sentence_transformers.json): queries and
    documents get theirs, plain encode the default one; the model becomes asymmetric."""
    folder = tmp_path / "prompted"
    shutil.copytree(find_spec("all-MiniLM-L6-v2").locate(), folder)
    (folder / "config_sentence_transformers.json").write_text(
        '{"prompts": {"query": "query: ", "passage": "passage: ", "empty": ""}, '
        '"default_prompt_name": "query"}'
    )
    model = load_model(str(folder), backend="onnx")
    assert model.asymmetric
    want = catalog_onnx.encode([f"query: {t}" for t in TEXTS])
    np.testing.assert_allclose(model.encode_query(TEXTS), want, atol=1e-5)
    np.testing.assert_allclose(model.encode(TEXTS), want, atol=1e-5)
    want = catalog_onnx.encode([f"passage: {t}" for t in TEXTS])
    np.testing.assert_allclose(model.encode_document(TEXTS), want, atol=1e-5)
    assert not catalog_onnx.asymmetric


def test_prompts_that_are_not_text_are_a_clear_error(tmp_path):
    folder = tmp_path / "bad-prompts"
    shutil.copytree(find_spec("all-MiniLM-L6-v2").locate(), folder)
    (folder / "config_sentence_transformers.json").write_text('{"prompts": {"query": 3}}')
    with pytest.raises(ModelNotFoundError, match="unsupported prompts"):
        load_model(str(folder), backend="onnx")
