"""Choose the fastest faithful runtime for a transformer on this machine, once, and remember it.

The fastest runtime depends on the CPU: ONNX Runtime's dynamic int8 is 1.8-2.1x
sentence-transformers on an AVX2-only EPYC, where OpenVINO f32 is 1.4x; on a Xeon with AMX,
OpenVINO bf16 is 3.35x and the same int8 1.70x (docs/benchmarks.md, issue 19). So every
candidate that is installed and applies to this CPU encodes the same real texts
(calibration.txt), one after the other; its vectors are compared with the fp32 ONNX
reference's (identical to PyTorch's), and the fastest one that stays faithful (cosine mean
>= 0.99, min >= 0.97) is chosen. The measured table is cached per model weights, CPU model and
flags, threads and library versions: the measurement runs once per machine, under a file lock,
and `embedstack models info NAME` shows it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from embedstack.errors import EmbedstackError
from embedstack.models.catalog import TRANSFORMER_RUNTIMES
from embedstack.models.cpu import this_cpu
from embedstack.models.encoder import Encoder
from embedstack.models.onnx_backend import cpu_threads
from embedstack.models.onnx_export import RECIPE_VERSION
from embedstack.progress import progress_bar
from embedstack.settings import get_settings

AUTO = "auto"
REFERENCE = "onnx"  # fp32 ONNX: cosine 1.0000 to PyTorch, and no torch import to measure it
# All but "auto" itself and openvino-int8: its bulk speed is the best on a VNNI CPU (1.2x
# onnx-int8 on passages, 1.9x on sentences), but one query at a time it is slower, since
# OpenVINO pays ~2 ms whenever the input shape changes: dense search p50 8.4 ms against 6.2,
# p99 30 against 11 (Zen 4, docs/benchmarks.md). `auto` times bulk work only, so it is chosen
# by name.
CANDIDATES = tuple(r for r in TRANSFORMER_RUNTIMES[1:] if r != "openvino-int8")
MIN_MEAN_COSINE = 0.99
MIN_COSINE = 0.97
# The timed pass reads every text three times: bulk work (texts sorted by length) repeats input
# shapes, and OpenVINO pays ~2 ms whenever a shape changes. With one copy, every shape new,
# OpenVINO's static int8 and onnx-int8 swapped places between runs where 2,000 passages put the
# former 1.2x ahead; three copies come closer to bulk (docs/benchmarks.md).
COPIES = 3
CHOICE_VERSION = 4  # bump when the measurement changes: cached choices are made again
LIBRARIES = ("onnxruntime", "openvino", "torch", "transformers")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    """One candidate's measurement; `error` says why it did not run."""

    backend: str
    texts_per_s: float | None = None
    mean_cosine: float | None = None
    min_cosine: float | None = None
    error: str | None = None

    @property
    def faithful(self) -> bool:
        return (
            self.error is None
            and self.mean_cosine is not None
            and self.min_cosine is not None
            and self.mean_cosine >= MIN_MEAN_COSINE
            and self.min_cosine >= MIN_COSINE
        )


@dataclass(frozen=True)
class RuntimeChoice:
    """What `backend="auto"` runs for a model on this machine, and the table it was chosen by."""

    model: str
    chosen: str
    trials: tuple[Trial, ...]
    cpu: str
    threads: int
    texts: int
    measured_at: str
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for trial, row in zip(self.trials, data["trials"], strict=True):
            row["faithful"] = trial.faithful
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeChoice:
        trials = tuple(
            Trial(**{k: v for k, v in row.items() if k != "faithful"}) for row in data["trials"]
        )
        return cls(**{**data, "trials": trials})


def calibration_texts() -> list[str]:
    """The bundled real texts: a dozen passages and two dozen sentences and questions."""
    text = resources.files("embedstack.models").joinpath("calibration.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def choose(
    model: str,
    weights_id: str,
    candidates: Sequence[str],
    build: Callable[[str], Encoder],
) -> tuple[RuntimeChoice, Encoder | None]:
    """The cached choice for this model and machine, or a new measurement (then also the
    chosen model, already loaded, so that it is not loaded twice)."""
    choice = cached(model, weights_id, candidates)
    if choice is not None:
        return choice, None
    path = _cache_path(model, weights_id, candidates)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        choice = _read(path, candidates)  # another process may have measured while we waited
        if choice is not None:
            return choice, None
        choice, loaded = measure(model, candidates, build)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(choice.to_dict(), indent=1), encoding="utf-8")
        tmp.replace(path)
    return choice, loaded


def cached(model: str, weights_id: str, candidates: Sequence[str]) -> RuntimeChoice | None:
    """The choice measured before for this model and machine, or None (nothing is measured)."""
    return _read(_cache_path(model, weights_id, candidates), candidates)


def measure(
    model: str, candidates: Sequence[str], build: Callable[[str], Encoder]
) -> tuple[RuntimeChoice, Encoder]:
    """Time every candidate on the calibration texts, loaded one after another: at most the
    one being timed and the fastest faithful one so far (returned, so it is not loaded twice)
    are held at once."""
    texts = calibration_texts()
    order = [REFERENCE, *(c for c in candidates if c != REFERENCE)]
    reference: np.ndarray | None = None
    trials: list[Trial] = []
    best: tuple[float, Encoder] | None = None
    with progress_bar(
        len(order), f"Choosing a runtime for {model} (once)", enabled=sys.stderr.isatty()
    ) as advance:
        for backend in order:
            try:
                encoder = build(backend)
                seconds, vectors = _time(encoder, texts)
            except Exception as exc:  # any failure of one candidate (ONNX Runtime's own
                # errors derive from Exception alone) is a row in the table, not a failed load
                reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
                if backend == REFERENCE:  # nothing to check the others against
                    raise EmbedstackError(f"no runtime can run {model}: {reason}") from exc
                trials.append(Trial(backend, error=reason))
                advance(1)
                continue
            if reference is None:  # the first to run is the reference (see `order`)
                reference = vectors
            cosines = (vectors * reference).sum(axis=1)
            trial = Trial(
                backend, len(texts) / seconds, float(cosines.mean()), float(cosines.min())
            )
            trials.append(trial)
            if trial.faithful and (best is None or seconds < best[0]):
                best = (seconds, encoder)
            del encoder
            advance(1)
    assert best is not None  # the reference ran, and it is faithful to itself
    chosen = best[1]
    log.info("runtime for %s on this CPU: %s", model, chosen.backend)
    choice = RuntimeChoice(
        model=model,
        chosen=chosen.backend,
        trials=tuple(trials),
        cpu=this_cpu().describe(),
        threads=cpu_threads(),
        texts=len(texts),
        measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        versions=_versions(),
    )
    return choice, chosen


def _time(encoder: Encoder, texts: list[str]) -> tuple[float, np.ndarray]:
    """Seconds per pass over `texts`, and their vectors."""
    # An untimed pass first: first-call allocations, and OpenVINO compiling each new input
    # shape (its static int8 ran the first pass at 40% of its speed after), are not throughput.
    vectors = encoder.encode(texts)
    started = time.perf_counter()
    encoder.encode(texts * COPIES)
    return (time.perf_counter() - started) / COPIES, vectors


def _versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def _cache_path(model: str, weights_id: str, candidates: Sequence[str]) -> Path:
    """One file per model weights, ONNX export recipe (int8's fidelity depends on it), CPU,
    thread count, library versions and candidate list."""
    cpu = this_cpu()
    key = json.dumps(
        [CHOICE_VERSION, RECIPE_VERSION, weights_id, cpu.model, cpu.simd, cpu_threads(),
         _versions(), list(candidates)]
    )  # fmt: skip
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)[:80]
    return get_settings().cache_dir / "runtimes" / f"{safe}-{digest}.json"


def _read(path: Path, candidates: Sequence[str]) -> RuntimeChoice | None:
    """A cached choice, or None when missing, unreadable or naming no candidate (then it is
    measured again): a damaged file must neither stop the model loading nor run a runtime
    under another's name (the name is also the embedding cache's namespace)."""
    try:
        choice = RuntimeChoice.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return choice if choice.chosen in (REFERENCE, *candidates) else None
