"""Embedding models: a catalog of names, and encoders that turn text into vectors."""

from __future__ import annotations

from embedstack.models.catalog import CATALOG, DEFAULT_MODEL, ModelSpec, find_spec
from embedstack.models.encoder import Encoder
from embedstack.models.sbert_folder import read_sbert_folder

__all__ = ["CATALOG", "DEFAULT_MODEL", "Encoder", "ModelSpec", "find_spec", "load_model"]


def load_model(name: str = DEFAULT_MODEL) -> Encoder:
    """Load a catalog model by name (offline: its weights come from an installed package)."""
    from embedstack.models.torch_backend import TorchTransformer

    spec = find_spec(name)
    config = read_sbert_folder(spec.locate())
    return Encoder(spec.name, config, TorchTransformer(config.transformer_dir), dim=spec.dim)
