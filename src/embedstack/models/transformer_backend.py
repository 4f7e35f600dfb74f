"""The transformer backends: a sentence-transformers pipeline whose transformer step runs on
ONNX Runtime (onnx-int8, onnx), OpenVINO (openvino, openvino-bf16) or PyTorch (torch), or on
whichever of them is fastest and faithful on this machine (auto, see runtime_choice).

Serves catalog entries (`from_spec`), and two resolvers for models given by path: a
sentence-transformers folder and a bare `.onnx` file with its tokenizer.json beside it.
ONNX files are built from the bundled weights on first use and cached (see onnx_export).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from embedstack.errors import ModelNotFoundError, OnnxLoadError
from embedstack.models.catalog import TRANSFORMER_RUNTIMES, ModelSpec, find_spec
from embedstack.models.encoder import Encoder, Runner
from embedstack.models.onnx_backend import OnnxTransformer
from embedstack.models.onnx_export import onnx_file, weight_files, weights_digest
from embedstack.models.openvino_backend import PRECISIONS, OpenVinoTransformer, require_openvino
from embedstack.models.openvino_int8 import BACKEND as OPENVINO_INT8
from embedstack.models.openvino_int8 import quantized_ir
from embedstack.models.registry import LoadRequest
from embedstack.models.runtime_choice import (
    AUTO,
    CANDIDATES,
    RuntimeChoice,
    cached,
    calibration_texts,
    choose,
)
from embedstack.models.sbert_folder import SbertConfig, read_onnx_folder, read_sbert_folder

TRANSFORMER_BACKENDS = TRANSFORMER_RUNTIMES[1:]  # all but "auto"
DEFAULT_BACKEND = AUTO


def from_spec(spec: ModelSpec, backend: str) -> Encoder:
    """A catalog transformer on `backend`."""
    if backend == AUTO:
        choice, loaded = _spec_choice(spec)
        return loaded or from_spec(spec, choice.chosen)
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


def runtime_choice_for(spec: ModelSpec) -> RuntimeChoice | None:
    """What `auto` runs this catalog model on here (measured now if not yet); None when the
    entry has no choice to make or its package is not installed."""
    if AUTO not in spec.backends or not spec.installed():
        return None
    return _spec_choice(spec)[0]


def settled_runtime(spec: ModelSpec) -> str | None:
    """What `auto` runs this catalog model on, without measuring now: the choice measured
    before on this machine, else the first runtime the entry lists (int8 ONNX, the fastest on
    every CPU measured so far but AMX ones). For loads on a request's path, which a minute of
    measuring would time out; None when the entry has no choice to make."""
    if AUTO not in spec.backends:
        return None
    candidates = _candidates(spec)
    choice = cached(spec.name, _weights_id(spec), candidates)
    return choice.chosen if choice is not None else candidates[0]


def _spec_choice(spec: ModelSpec) -> tuple[RuntimeChoice, Encoder | None]:
    return choose(spec.name, _weights_id(spec), _candidates(spec), lambda b: from_spec(spec, b))


def _candidates(spec: ModelSpec) -> list[str]:
    """The runtimes `auto` chooses among for this entry, in the order it lists them."""
    return [b for b in spec.backends if b in CANDIDATES]


def _weights_id(spec: ModelSpec) -> str:
    location = spec.locate()
    if spec.onnx_only:
        return weights_digest([location])
    return weights_digest(weight_files(read_sbert_folder(location).transformer_dir))


def resolve_onnx_file(request: LoadRequest) -> Encoder | None:
    """An exported `.onnx` file (e.g. from optimum) with tokenizer.json beside it."""
    path = Path(request.name).expanduser()
    if path.suffix != ".onnx" or not path.is_file():
        return None
    config = read_onnx_folder(path)
    runner = OnnxTransformer(path)
    return Encoder(str(path.resolve()), config, runner, dim=_probe_dim(runner), backend="onnx")


def resolve_folder(request: LoadRequest) -> Encoder | None:
    """A sentence-transformers folder (a fine-tuned model); `auto` measures its runtimes like a
    catalog model's, and its ONNX files are cached under its name and path."""
    path = Path(request.name).expanduser()
    if not path.is_dir():
        return None
    backend = request.backend or DEFAULT_BACKEND
    if backend not in (AUTO, *TRANSFORMER_BACKENDS):
        raise ModelNotFoundError(
            f"a model folder runs on {', '.join((AUTO, *TRANSFORMER_BACKENDS))}, not {backend}"
        )
    config = read_sbert_folder(path)
    resolved = str(path.resolve())

    def on(backend: str) -> Encoder:
        cache_name = f"{path.resolve().name}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"
        runner = _runner(cache_name, config, backend, keep_fp32=())
        return Encoder(resolved, config, runner, hidden_size(config), backend)

    if backend != AUTO:
        return on(backend)
    weights = weights_digest(weight_files(config.transformer_dir))
    choice, loaded = choose(resolved, weights, CANDIDATES, on)
    return loaded or on(choice.chosen)


def _runner(
    cache_name: str,
    config: SbertConfig,
    backend: str,
    keep_fp32: tuple[str, ...],
    source: Path | None = None,
    per_channel: bool = True,
) -> Runner:
    if backend == "torch":
        from embedstack.models.torch_backend import TorchTransformer

        return TorchTransformer(config.transformer_dir)
    if backend in PRECISIONS:  # OpenVINO compiles the fp32 ONNX export (or NNCF's int8 of it)
        require_openvino(backend)  # before exporting anything
        fp32 = onnx_file(
            cache_name, config.transformer_dir, quantize=False, keep_fp32=(), source=source
        )
        if backend != OPENVINO_INT8:
            return OpenVinoTransformer(fp32, backend)
        texts = calibration_texts()
        ir = quantized_ir(fp32, config.tokenizer_file, config.max_seq_length, texts)
        try:
            return OpenVinoTransformer(ir, backend)
        except OnnxLoadError:  # a damaged cached IR is rebuilt once, like the ONNX files
            ir.unlink(missing_ok=True)
            ir = quantized_ir(fp32, config.tokenizer_file, config.max_seq_length, texts)
            return OpenVinoTransformer(ir, backend)

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


def hidden_size(config: SbertConfig) -> int:
    """The width of the transformer's vectors, from its config.json (no weights loaded)."""
    path = config.transformer_dir / "config.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
        return int(settings.get("hidden_size") or settings.get("dim") or settings["d_model"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotFoundError(f"cannot read the model's width from {path}: {exc}") from exc


def _probe_dim(runner: OnnxTransformer) -> int:
    ones = np.ones((1, 2), dtype=np.int64)
    batch = {"input_ids": ones, "attention_mask": ones, "token_type_ids": np.zeros_like(ones)}
    return int(runner(batch).shape[-1])
