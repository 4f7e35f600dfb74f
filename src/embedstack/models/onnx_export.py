"""Build ONNX files from a model's bundled PyTorch weights (offline), once, into the user cache.

Needs torch and transformers only when a file is missing; loading a cached model does not import
them. Files are keyed by model, the weights' content and `RECIPE_VERSION`, built under a file
lock (two processes never build the same file twice) and published with an atomic rename.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from embedstack.errors import ModelNotFoundError
from embedstack.models.onnx_backend import import_onnxruntime
from embedstack.settings import get_settings

RECIPE_VERSION = 3  # bump when export or quantisation changes: old cache entries are ignored
INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def cache_root() -> Path:
    """Where built models live (see `Settings.cache_dir`)."""
    return get_settings().cache_dir


def weights_digest(files: list[Path]) -> str:
    """Identify weights by content: a reinstall of the same package (new path, new mtimes) reuses
    its ONNX files instead of leaving another copy in the cache, and changed weights rebuild."""
    parts = [f"{f.name}:{_content_digest(f)}" for f in files]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def _content_digest(path: Path) -> str:
    """sha256 of a file, memoised by (path, size, mtime): each install is read once (MiniLM's
    86 MB take 0.16 s, mpnet's 417 MB 1.7 s), later loads cost a stat."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo = cache_root() / "digests.json"
    known = _read_memo(memo)
    if key in known:
        return known[key]
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    memo.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(memo) + ".lock"):
        known = _read_memo(memo)
        known[key] = digest
        # Entries of files that are gone (uninstalled, replaced) are dropped as we go.
        known = {k: v for k, v in known.items() if Path(k.rsplit("|", 2)[0]).exists()}
        _publish(memo, lambda tmp: tmp.write_text(json.dumps(known, indent=0)))
    return digest


def _read_memo(memo: Path) -> dict[str, str]:
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: hash again
    return known if isinstance(known, dict) else {}


def weight_files(transformer_dir: Path, source: Path | None = None) -> list[Path]:
    """The files that hold a transformer's weights (`source`: a model shipped as ONNX)."""
    if source is not None:
        return [source]
    weights = sorted(transformer_dir.glob("*.safetensors")) or sorted(
        transformer_dir.glob("pytorch_model.bin")
    )
    if not weights:
        raise ModelNotFoundError(f"no weights (*.safetensors) in {transformer_dir}")
    return weights


def onnx_file(
    name: str,
    transformer_dir: Path,
    *,
    quantize: bool,
    keep_fp32: tuple[str, ...] = (),
    per_channel: bool = True,
    rebuild: bool = False,
    source: Path | None = None,
) -> Path:
    """Path of the cached ONNX model (fp32 or int8), building it first if needed.

    `source`: a model shipped as ONNX already; it is used as the fp32 model and only the
    int8 variant is built (into the cache, never beside the package's file).
    """
    weights = weight_files(transformer_dir, source)
    if source is not None and not quantize:
        return source
    folder = cache_root() / "onnx" / f"{name}-r{RECIPE_VERSION}-{weights_digest(weights)}"
    fp32 = source or folder / "model.onnx"
    int8 = folder / "model-int8.onnx"
    target = int8 if quantize else fp32
    if target.is_file() and not rebuild:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".build.lock")):
        if rebuild:
            int8.unlink(missing_ok=True)
            if source is None:
                fp32.unlink(missing_ok=True)
        with _quiet():
            if not fp32.is_file():
                _publish(fp32, lambda tmp: _export(transformer_dir, tmp))
            if quantize and not int8.is_file():
                _publish(int8, lambda tmp: quantize_int8(fp32, tmp, keep_fp32, per_channel))
    return target


def cached_build(
    name: str,
    weights: list[Path],
    file_name: str,
    build: Callable[[Path], None],
    *,
    rebuild: bool = False,
) -> Path:
    """`file_name` built from `weights` by `build(path)` once, into the cache folder of `name`
    and the weights' content, under the build lock, published atomically (image encoders)."""
    folder = cache_root() / "onnx" / f"{name}-{weights_digest(weights)}"
    target = folder / file_name
    if target.is_file() and not rebuild:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".build.lock")):
        if rebuild:
            target.unlink(missing_ok=True)
        if not target.is_file():
            with _quiet():
                _publish(target, build)
    return target


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporter and quantiser warn about things that do not apply here; keep stderr clean."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _publish(target: Path, build) -> None:
    """Build into a temp file beside `target`, then rename: readers never see half a file."""
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=f"{target.suffix}.tmp")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        build(tmp)
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _export(transformer_dir: Path, output: Path) -> None:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    # Eager attention exports as plain MatMul/Softmax, which ONNX Runtime runs ~25% faster than
    # the exported SDPA graph (measured on MiniLM, 256-token passages, fp32 and int8).
    # local_files_only: the weights are the bundled folder's; never ask the hub.
    model = transformers.AutoModel.from_pretrained(
        str(transformer_dir), attn_implementation="eager", local_files_only=True
    ).eval()
    uses_segments = getattr(model.config, "type_vocab_size", 0) > 1
    names = INPUT_NAMES if uses_segments else INPUT_NAMES[:2]

    class TokenVectors(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    wrapper = TokenVectors().eval()  # eval() on the wrapper: export restores its training flag
    example = torch.ones((2, 8), dtype=torch.long)
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "token_vectors"]}
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            wrapper,
            tuple(example for _ in names),
            str(output),
            input_names=names,
            output_names=["token_vectors"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def quantize_int8(
    fp32: Path, output: Path, keep_fp32: tuple[str, ...] = (), per_channel: bool = True
) -> None:
    """Dynamic int8 quantisation of the weight MatMuls (activations are quantised at run time)."""
    import onnx

    import_onnxruntime()  # first, so that its usage events are off
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = [
        node.name
        for node in onnx.load(str(fp32), load_external_data=False).graph.node
        if any(re.search(pattern, node.name) for pattern in keep_fp32)
    ]
    quantize_dynamic(
        str(fp32),
        str(output),
        per_channel=per_channel,
        weight_type=QuantType.QInt8,
        # MatMuls only: quantising embedding tables (Gather) breaks MPNet's relative position
        # bias (cosine ~0 to fp32) and buys MiniLM nothing but file size.
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=excluded,
    )
