"""Static int8 for OpenVINO (`backend="openvino-int8"`): NNCF quantises the fp32 ONNX export
once, with activation scales calibrated on the bundled real texts, and the IR is cached beside
the ONNX file.

Why static: ONNX Runtime's dynamic int8 computes one activation scale per batch, so a text's
vector depends on the texts batched with it, and `onnx-int8` runs one text per call. With fixed
scales a text's vector depends only on the width it is padded to, which the encoder makes a
function of the text's own length (encoder.padded_width): alone or batched, the same vector, so
this runtime batches short texts. It is also more faithful (MiniLM-L6: cosine to fp32 0.998
against 0.995) and, on a VNNI CPU, faster in bulk (docs/benchmarks.md). One query at a time it
is slower than `onnx-int8` (OpenVINO's cost per input-shape change), so `auto` leaves it out:
it is chosen by name, for ingest-heavy work.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType

import numpy as np
from tokenizers import Tokenizer

from embedstack.errors import ModelLoadError
from embedstack.models.openvino_backend import require_openvino

BACKEND = "openvino-int8"
TELEMETRY = "openvino_telemetry"


def import_nncf() -> ModuleType:
    """NNCF, imported so that its usage events stay off.

    NNCF builds an openvino-telemetry client at import (which writes ~/intel and would send
    events to Google Analytics) whenever `from openvino_telemetry import Telemetry` works, and
    only then checks NNCF_CI. So a placeholder without `Telemetry` stands in for that package
    while NNCF is imported: NNCF takes its ImportError path and uses its no-op stub
    (tests/models/test_no_telemetry.py). The real package, if loaded, is put back after.
    """
    if sys.modules.get("nncf") is not None:
        return sys.modules["nncf"]
    real = sys.modules.get(TELEMETRY)
    sys.modules[TELEMETRY] = ModuleType(TELEMETRY)  # no Telemetry: the import of it fails
    try:
        import nncf
    except ImportError as exc:
        raise ModelLoadError(
            f"backend {BACKEND!r} needs NNCF to quantise the model once: "
            "pip install 'embedstack[openvino]'"
        ) from exc
    finally:
        if real is None:
            del sys.modules[TELEMETRY]
        else:
            sys.modules[TELEMETRY] = real
    return nncf


def _nncf_version() -> str:
    try:
        return metadata.version("nncf")
    except metadata.PackageNotFoundError:
        import_nncf()  # raises the clear error
        raise


def quantized_ir(onnx_path: Path, tokenizer_file: Path, max_tokens: int, texts: list[str]) -> Path:
    """The int8 IR (`.xml`, its weights in the `.bin` beside it) of the fp32 `onnx_path`,
    built on first use from `texts` and reused after."""
    require_openvino(BACKEND)
    import openvino as ov

    # named by what it is made from besides the ONNX file: NNCF's version and the texts
    texts_id = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:8]
    target = onnx_path.with_name(f"model-ov-int8-nncf{_nncf_version()}-{texts_id}.xml")
    if target.is_file() and target.with_suffix(".bin").is_file():
        return target  # without importing NNCF, which imports torch (seconds)
    nncf = import_nncf()
    core = ov.Core()
    model = core.read_model(str(onnx_path))
    names = {name for port in model.inputs for name in port.get_names()}
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)

    def feed(text: str) -> dict[str, np.ndarray]:
        ids = np.array([tokenizer.encode(text.strip()).ids], dtype=np.int64)
        inputs = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        return {name: array for name, array in inputs.items() if name in names}

    with _quiet(nncf):
        quantized = nncf.quantize(
            model,
            nncf.Dataset(texts, feed),
            model_type=nncf.ModelType.TRANSFORMER,  # softmax, layer norms and GELU stay float
            preset=nncf.QuantizationPreset.MIXED,  # symmetric weights, asymmetric activations
            subset_size=len(texts),
        )
    with _building(target) as tmp:
        ov.save_model(quantized, str(tmp / target.name))
    return target


@contextlib.contextmanager
def _quiet(nncf: ModuleType) -> Iterator[None]:
    """NNCF's log lines and progress bars (Rich, on stdout) kept out of our output: a first use
    under `embedstack ... --json` must still print JSON alone."""
    logger = logging.getLogger(nncf.common.logging.logger.NNCF_LOGGER_NAME)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _building(target: Path) -> Iterator[Path]:
    """A temp folder beside `target` to save into; then the `.bin` and last the `.xml` are
    renamed into place, so a reader that finds the `.xml` finds its weights too."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".ov-int8-"))
    try:
        yield tmp
        os.replace(tmp / target.with_suffix(".bin").name, target.with_suffix(".bin"))
        os.replace(tmp / target.name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
