"""Embedding models: a catalog of names, and encoders that turn text into vectors."""

from __future__ import annotations

from embedstack.errors import ModelNotFoundError
from embedstack.models.catalog import CATALOG, DEFAULT_MODEL, ModelSpec, find_spec
from embedstack.models.encoder import Encoder
from embedstack.models.onnx_backend import OnnxLoadError
from embedstack.models.sbert_folder import read_sbert_folder

__all__ = [
    "BACKENDS",
    "CATALOG",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "Encoder",
    "ModelSpec",
    "find_spec",
    "load_model",
]

BACKENDS = ("onnx-int8", "onnx", "torch")
DEFAULT_BACKEND = "onnx-int8"  # ~3x PyTorch on CPU at cosine >= 0.98 to fp32 (docs/benchmarks.md)


def load_model(name: str = DEFAULT_MODEL, backend: str = DEFAULT_BACKEND) -> Encoder:
    """Load a catalog model by name (offline: its weights come from an installed package).

    `backend`: "onnx-int8" (default, fastest), "onnx" (fp32, identical to PyTorch) or "torch".
    ONNX files are built from the bundled weights on first use and cached (see onnx_export).
    """
    if backend not in BACKENDS:
        raise ModelNotFoundError(
            f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    spec = find_spec(name)
    config = read_sbert_folder(spec.locate())
    if backend == "torch":
        from embedstack.models.torch_backend import TorchTransformer

        runner = TorchTransformer(config.transformer_dir)
    else:
        from embedstack.models.onnx_backend import OnnxTransformer
        from embedstack.models.onnx_export import onnx_file

        def build(rebuild: bool = False):
            return onnx_file(
                spec.name,
                config.transformer_dir,
                quantize=backend == "onnx-int8",
                keep_fp32=spec.int8_keep_fp32,
                rebuild=rebuild,
            )

        try:
            runner = OnnxTransformer(build())
        except OnnxLoadError:  # a damaged cache file is rebuilt once, not fatal
            runner = OnnxTransformer(build(rebuild=True))
    return Encoder(spec.name, config, runner, dim=spec.dim, backend=backend)
