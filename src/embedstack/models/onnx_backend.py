"""Run a transformer exported to ONNX with ONNX Runtime on the CPU (the default backend)."""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Generic, TypeVar

import numpy as np

from embedstack.errors import OnnxLoadError
from embedstack.settings import get_settings

NO_TELEMETRY = "ORT_DISABLE_TELEMETRY"


def cpu_threads() -> int:
    """Cores this process may use (respects affinity and EMBEDSTACK_THREADS)."""
    threads = get_settings().threads
    if threads:
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


MAX_SESSIONS = 4  # each session holds its own copy of the weights
Worker = TypeVar("Worker")


class Workers(Generic[Worker]):
    """The sessions (or infer requests) of a runner: one per concurrent call, and optionally
    a `solo` one over every core, for a call that comes alone while nothing else runs."""

    def __init__(self, each: list[Worker], solo: Worker | None) -> None:
        self._free: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        for worker in each:
            self._free.put(worker)
        self._solo = solo
        self._busy = 0
        self._lock = threading.Lock()

    @contextmanager
    def take(self, alone: bool) -> Iterator[Worker]:
        with self._lock:
            solo = self._solo if alone and not self._busy else None
            self._busy += 1
        try:  # an interrupted wait (Ctrl-C) must not leave the count raised
            worker = self._free.get() if solo is None else solo
            try:
                yield worker
            finally:
                if solo is None:
                    self._free.put(worker)
        finally:
            with self._lock:
                self._busy -= 1


class OnnxTransformer:
    """Token vectors (last hidden state) for a padded batch, from a small pool of sessions.

    Instead of one session whose threads split every matrix product, the cores are shared out
    over up to MAX_SESSIONS sessions, and `parallelism` batches run at once (see
    `Encoder.encode`). On 2 cores that is two one-thread sessions: batch throughput is the same
    or slightly better, and a single query embeds on one core, leaving the other to the BM25
    search that runs beside it (hybrid p50 at 106k chunks: 30 ms with one two-thread session,
    24-28 ms in back-to-back runs with two one-thread sessions).
    """

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        threads = threads or cpu_threads()
        self.parallelism = min(threads, MAX_SESSIONS)
        each = threads // self.parallelism
        sessions = [_session(onnx_path, each) for _ in range(self.parallelism)]
        # No session over every core for a lone call: one query took 2.27 against 3.08 ms
        # (same outputs), but search p99 doubled (~18 against 9-11 ms), the p50 gain came
        # and went between runs, and a hybrid search runs BM25 on the other core meanwhile.
        self._workers = Workers(sessions, solo=None)
        session = sessions[0]
        self._input_names = {i.name for i in session.get_inputs()}
        # Token vectors are the (batch, tokens, dim) output; some exports add pooled extras.
        outputs = session.get_outputs()
        ranked = [o.name for o in outputs if len(o.shape) == 3]
        self._output = ranked[0] if ranked else outputs[0].name

    def __call__(self, batch: dict[str, np.ndarray], alone: bool = False) -> np.ndarray:
        """Thread-safe: each concurrent call gets a session of its own (see `Workers`)."""
        feed = {name: array for name, array in batch.items() if name in self._input_names}
        with self._workers.take(alone) as session:
            return session.run([self._output], feed)[0]


def import_onnxruntime() -> ModuleType:
    """ONNX Runtime, imported with its usage events off.

    ONNX Runtime 1.32 sends events to mobile.events.data.microsoft.com from its own threads
    while it quantizes and saves models (our first-use export); only ORT_DISABLE_TELEMETRY,
    read when onnxruntime is imported, stops that (checked with strace, see
    tests/models/test_no_telemetry.py). It is set for the import alone: embedstack changes no
    one's environment (tests/models/test_offline.py).
    """
    if "onnxruntime" not in sys.modules:
        given = os.environ.get(NO_TELEMETRY)
        os.environ[NO_TELEMETRY] = "1"
        try:
            import onnxruntime  # noqa: F401
        finally:
            if given is None:
                del os.environ[NO_TELEMETRY]
            else:
                os.environ[NO_TELEMETRY] = given
    import onnxruntime as ort

    ort.disable_telemetry_events()  # and its Windows (ETW) events
    return ort


def _session(onnx_path: Path, threads: int):
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Threads spin while a batch runs (throughput), not after it, when BM25 may want the core.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for bad files
        raise OnnxLoadError(f"ONNX Runtime cannot load {onnx_path}: {exc}") from exc
