"""Run a transformer's fp32 ONNX export with OpenVINO (the `openvino` extra) on the CPU.

OpenVINO compiles the same ONNX file as ONNX Runtime's fp32 backend, in f32 or, on CPUs with
bf16 units (AMX, AVX-512-BF16), in bf16: 3.35x sentence-transformers at cosine 1.0000 on a Xeon
with AMX, where ONNX Runtime's int8 reached 1.70x (issue 19). Which is fastest on this machine
is measured, not assumed (runtime_choice.py). Compiled models are cached beside the ONNX files.
"""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import numpy as np

from embedstack.errors import ModelLoadError, OnnxLoadError
from embedstack.models.cpu import this_cpu
from embedstack.models.onnx_backend import MAX_SESSIONS, Workers, cpu_threads
from embedstack.settings import get_settings

# openvino-int8 runs NNCF's int8 IR (openvino_int8.py); what is left in float stays f32.
PRECISIONS = {"openvino": "f32", "openvino-bf16": "bf16", "openvino-int8": "f32"}
# OpenVINO's Python bindings set up static state inside the first `infer` of a process; two
# threads making that first call at once deadlocked (one in a C++ static-init guard waiting
# for the GIL, the other holding the GIL waiting for the guard: seen in a CI run while the
# runtime choice measured OpenVINO). The first calls run one at a time; later ones do not.
_FIRST_INFER = threading.Lock()
_warm = False


def require_openvino(backend: str) -> None:
    """Fail early and clearly when the extra is missing or the CPU cannot do the precision."""
    try:
        _import_without_telemetry()
    except ImportError as exc:
        raise ModelLoadError(
            f"backend {backend!r} needs OpenVINO: pip install 'embedstack[openvino]'"
        ) from exc
    if PRECISIONS[backend] == "bf16" and not this_cpu().has_bf16:
        raise ModelLoadError(
            f"backend {backend!r} needs a CPU with AMX or AVX-512-BF16; this one is "
            f"{this_cpu().describe()}"
        )


def _import_without_telemetry() -> None:
    """`import openvino` imports its model converter (openvino.tools.ovc), whose import sends a
    usage event to Google Analytics unless the user has opted out. We never convert (OpenVINO
    compiles the ONNX file itself), so the converter is kept out while OpenVINO is imported:
    openvino/__init__ treats it as absent (ImportError, caught there) and nothing is sent.
    The one trace left: when embedstack imported OpenVINO first, `openvino.convert_model` is
    missing in that process; `from openvino.tools.ovc import convert_model` still works."""
    if "openvino" in sys.modules:
        return
    converter = "openvino.tools.ovc"
    placeholder = types.ModuleType(converter)  # no convert_model: the import of it fails
    absent = converter not in sys.modules
    if absent:
        sys.modules[converter] = placeholder
    try:
        import openvino  # noqa: F401
    finally:
        if absent and sys.modules.get(converter) is placeholder:
            del sys.modules[converter]


class OpenVinoTransformer:
    """Token vectors (last hidden state) for a padded batch; the `Runner` of an Encoder.

    Like the ONNX Runtime runner, the cores are shared out over streams (one infer request
    each), so `parallelism` batches run at once.
    """

    def __init__(self, onnx_path: Path, backend: str, threads: int | None = None) -> None:
        require_openvino(backend)
        import openvino as ov

        threads = threads or cpu_threads()
        self.parallelism = min(threads, MAX_SESSIONS)
        core = ov.Core()
        cache = get_settings().cache_dir / "openvino"
        cache.mkdir(parents=True, exist_ok=True)
        config = {
            "INFERENCE_PRECISION_HINT": PRECISIONS[backend],
            "NUM_STREAMS": self.parallelism,
            "INFERENCE_NUM_THREADS": threads,
            "CACHE_DIR": str(cache),
        }
        compiled = _compile(core, onnx_path, config)
        self._input_names = {name for port in compiled.inputs for name in port.get_names()}
        ranks = [port.get_partial_shape().rank.get_length() for port in compiled.outputs]
        self._output = ranks.index(3) if 3 in ranks else 0  # token vectors: (batch, tokens, dim)
        requests = [compiled.create_infer_request() for _ in range(self.parallelism)]
        # A lone call (a search query) on one stream, that is one core, took twice ONNX
        # Runtime's time: OpenVINO's CPU plugin pays ~2 ms whenever a stream's input shape
        # changes. The model compiled as one stream over every core gives bit-identical token
        # vectors (int8, bf16 and f32, 120 texts) and cuts that time by a quarter to a third.
        solo = None
        if self.parallelism > 1:
            solo = _compile(core, onnx_path, {**config, "NUM_STREAMS": 1}).create_infer_request()
        self._workers = Workers(requests, solo)

    def __call__(self, batch: dict[str, np.ndarray], alone: bool = False) -> np.ndarray:
        """Thread-safe: each concurrent call gets an infer request of its own (see `Workers`)."""
        feed = {name: array for name, array in batch.items() if name in self._input_names}
        with self._workers.take(alone) as request:
            _infer(request, feed)
            # Copied: the request reuses its output buffer on the next call.
            return np.array(request.get_output_tensor(self._output).data, copy=True)


def _compile(core, onnx_path: Path, config: dict):
    try:
        return core.compile_model(str(onnx_path), "CPU", config)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise OnnxLoadError(f"OpenVINO cannot compile {onnx_path}: {exc}") from exc


def _infer(request, feed: dict[str, np.ndarray]) -> None:
    global _warm
    if _warm:
        request.infer(feed)
        return
    with _FIRST_INFER:
        request.infer(feed)
        _warm = True
