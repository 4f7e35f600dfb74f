"""The model registry: a new backend or a new kind of name is one registration, and loads by name.

The models registered here are tiny but real (see toy_models): feature hashing of words, and a
byte histogram of files standing in for an image encoder.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from embedstack import Collection, load_model
from embedstack.errors import ModelLoadError, ModelNotFoundError
from embedstack.models import (
    BACKENDS,
    CATALOG,
    LoadRequest,
    ModelSpec,
    register_backend,
    register_resolver,
)
from embedstack.models.cache import CachedEncoder, EmbeddingCache
from embedstack.models.registry import resolver_names, unregister_backend, unregister_resolver
from tests.models.toy_models import ByteHistogramModel, HashingModel


def spec(name: str, backend: str, dim: int, modality: str = "text") -> ModelSpec:
    return ModelSpec(
        name=name,
        dim=dim,
        max_tokens=10_000,
        license="MIT",
        package="numpy",  # installed: the test model needs no weights package
        weights="module:numpy",
        when_to_use="tests",
        backends=(backend,),
        modality=modality,
    )


@pytest.fixture
def hashing(monkeypatch):
    """A "hashing" backend and a catalog entry that runs on it, removed after the test."""
    register_backend("hashing", lambda entry, backend: HashingModel(entry.name, entry.dim))
    monkeypatch.setitem(CATALOG, "hash-64", spec("hash-64", "hashing", 64))
    yield
    unregister_backend("hashing")


def test_a_registered_backend_loads_by_catalog_name(hashing, tmp_path):
    assert "hashing" in BACKENDS  # the exported view follows the registry
    model = load_model("hash-64")
    assert isinstance(model, HashingModel) and model.dim == 64 and model.modality == "text"
    cat, kitten, stocks = model.encode(["the cat sat", "the cat slept", "stocks fell"])
    assert float(cat @ kitten) > float(cat @ stocks)
    with Collection.open(tmp_path / "kb", "hash-64") as kb:  # end to end, by name
        kb.add(["the cat sat on the mat", "stock prices fell sharply"], ids=["cat", "stocks"])
        assert kb.search("where the cat sat", k=1, mode="dense")[0].id == "cat"


def test_unknown_and_duplicate_backends(hashing):
    with pytest.raises(ModelNotFoundError, match="unknown backend 'tensorrt'.*hashing"):
        load_model("hash-64", backend="tensorrt")
    with pytest.raises(ValueError, match="already registered"):
        register_backend("hashing", lambda entry, backend: HashingModel(entry.name, entry.dim))
    with pytest.raises(ModelNotFoundError, match="runs on hashing, not 'onnx'"):
        load_model("hash-64", backend="onnx")


def test_a_resolver_claims_its_own_names():
    def hashing_names(request: LoadRequest):
        prefix, _, dim = request.name.partition(":")
        return HashingModel(request.name, int(dim)) if prefix == "hash" else None

    register_resolver("hashing", hashing_names)  # by default, ahead of the catalog
    try:
        names = resolver_names()
        assert names[:2] == ("remote", "onnx-file") and names[-2:] == ("hashing", "catalog")
        assert names.index("kmer-folder") < names.index("model-folder")  # claims its folders
        assert names.index("trained-words") < names.index("model-folder")
        assert load_model("hash:32").dim == 32
        with pytest.raises(ModelNotFoundError, match="unknown model 'hush:32'"):
            load_model("hush:32")  # passed on to the catalog, which does not know it
    finally:
        unregister_resolver("hashing")
    with pytest.raises(ValueError, match="no resolver 'nope'"):
        register_resolver("late", hashing_names, before="nope")


def test_an_image_model_is_one_backend_and_one_catalog_entry(monkeypatch, tmp_path):
    """Cached by file content: a copy elsewhere hits, an edited file misses."""
    register_backend("byte-histogram", lambda entry, backend: ByteHistogramModel(entry.name))
    monkeypatch.setitem(CATALOG, "bytes-256", spec("bytes-256", "byte-histogram", 256, "image"))
    try:
        model = load_model("bytes-256")
    finally:
        unregister_backend("byte-histogram")
    assert model.modality == "image"
    picture = tmp_path / "a.pgm"
    picture.write_bytes(b"P5 2 2 255\n" + bytes([0, 64, 128, 255]))
    copy = tmp_path / "copy-of-a.pgm"
    shutil.copy(picture, copy)
    cached = CachedEncoder(model, EmbeddingCache(tmp_path / "cache.db"))
    first = cached.encode(str(picture))
    assert cached.modality == "image" and model.files_read == 1
    np.testing.assert_array_equal(cached.encode(str(copy)), first)
    assert model.files_read == 1  # same bytes, same key: no second read by the model
    picture.write_bytes(b"P5 2 2 255\n" + bytes([1, 1, 1, 1]))
    assert float(cached.encode(str(picture)) @ first) < 0.99 and model.files_read == 2


def test_a_backend_must_give_the_modality_the_catalog_promises(monkeypatch):
    register_backend("hashing-as-image", lambda entry, backend: HashingModel(entry.name, 8))
    monkeypatch.setitem(CATALOG, "hash-img", spec("hash-img", "hashing-as-image", 8, "image"))
    try:
        with pytest.raises(ModelLoadError, match="as a text model; the catalog says image"):
            load_model("hash-img")
    finally:
        unregister_backend("hashing-as-image")


def test_a_catalog_entry_has_a_known_modality():
    with pytest.raises(ValueError, match="modality must be one of"):
        spec("bad", "hashing", 8, "smell")
