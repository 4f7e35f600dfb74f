"""Embedding models: a catalog of names, and encoders that turn text (later images, audio)
into vectors."""

from embedstack.models.base import (
    TOKEN_EMBEDDINGS,
    TOKENIZER,
    WORD_VECTORS,
    BaseEmbeddingModel,
    EmbeddingModel,
    Modality,
)
from embedstack.models.catalog import CATALOG, DEFAULT_MODEL, ModelSpec, find_spec
from embedstack.models.encoder import Encoder
from embedstack.models.loader import BACKENDS, DEFAULT_BACKEND, load_model, settled_runtime
from embedstack.models.registry import LoadRequest, register_backend, register_resolver
from embedstack.models.remote import RemoteEncoder, RemoteModelError

__all__ = [
    "BACKENDS",
    "CATALOG",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "TOKENIZER",
    "TOKEN_EMBEDDINGS",
    "WORD_VECTORS",
    "BaseEmbeddingModel",
    "EmbeddingModel",
    "Encoder",
    "LoadRequest",
    "Modality",
    "ModelSpec",
    "RemoteEncoder",
    "RemoteModelError",
    "find_spec",
    "load_model",
    "register_backend",
    "register_resolver",
    "settled_runtime",
]
