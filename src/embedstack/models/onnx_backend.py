"""Run a transformer exported to ONNX with ONNX Runtime on the CPU (the default backend)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedstack.errors import ModelNotFoundError


class OnnxLoadError(ModelNotFoundError):
    """ONNX Runtime could not load a model file."""


def cpu_threads() -> int:
    """Cores this process may use (respects affinity and EMBEDSTACK_THREADS)."""
    if os.environ.get("EMBEDSTACK_THREADS"):
        return max(1, int(os.environ["EMBEDSTACK_THREADS"]))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxTransformer:
    """Token vectors (last hidden state) for a padded batch."""

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise OnnxLoadError(f"ONNX Runtime cannot load {onnx_path}: {exc}") from exc
        self._input_names = {i.name for i in self._session.get_inputs()}
        # Token vectors are the (batch, tokens, dim) output; some exports add pooled extras.
        outputs = self._session.get_outputs()
        ranked = [o.name for o in outputs if len(o.shape) == 3]
        self._output = ranked[0] if ranked else outputs[0].name

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: array for name, array in batch.items() if name in self._input_names}
        return self._session.run([self._output], feed)[0]
