"""Copies of a GGUF model with its weight tensors stored in another type.

llama.cpp's speed depends on how the weights are stored, not only on what they are: on an AVX2
CPU it reads a prompt ~1.7x faster from 8-bit (Q8_0) weights than from the 4-bit (Q4_1) file
SmolLM2's package ships (docs/benchmarks.md, "The local LLM per runtime"), and a RAG answer's
time is mostly prompt reading. Re-storing the 4-bit values in 8 bits keeps the model: every
Q4_1 value is held to within about half a Q8_0 step (at most 0.4% of its block's range).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
from filelock import FileLock

from embedstack.models.onnx_export import cache_root, weights_digest

log = logging.getLogger(__name__)


def restored(source: Path, target: Path, kind: str, file_type: int | None = None) -> None:
    """Write `source` to `target` with every tensor quantised as `source`'s weights (Q4_1)
    re-stored as `kind` ("Q8_0", or "F32" for every tensor); metadata copied as is, except
    `general.file_type` when given. Written beside `target` and renamed: never half a file."""
    import gguf
    from gguf.quants import dequantize, quantize

    to = gguf.GGMLQuantizationType[kind]
    reader = gguf.GGUFReader(source)
    staging = target.with_name(target.name + f".{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(staging, reader.fields[gguf.Keys.General.ARCHITECTURE].contents())
    try:
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue  # written by GGUFWriter itself
            value_type = field.types[0]
            sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
            value = field.contents()
            if field.name == gguf.Keys.General.FILE_TYPE and file_type is not None:
                value = file_type
            writer.add_key_value(field.name, value, value_type, sub_type=sub_type)
        for tensor in reader.tensors:
            if to == gguf.GGMLQuantizationType.F32:
                writer.add_tensor(tensor.name, dequantize(tensor.data, tensor.tensor_type))
            elif tensor.tensor_type == gguf.GGMLQuantizationType.Q4_1:
                data = quantize(dequantize(tensor.data, tensor.tensor_type), to)
                writer.add_tensor(tensor.name, data, raw_shape=data.shape, raw_dtype=to)
            else:  # norms (F32) and the already 8-bit embedding stay as they are
                data = np.asarray(tensor.data)
                writer.add_tensor(tensor.name, data, raw_shape=data.shape,
                                  raw_dtype=tensor.tensor_type)  # fmt: skip
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        staging.replace(target)
    finally:
        staging.unlink(missing_ok=True)


def eight_bit(source: Path) -> Path:
    """An 8-bit copy of `source` in the cache, made once (~10 s) and shared by processes."""
    import gguf

    folder = cache_root() / "llm"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{source.stem}.{weights_digest([source])}.Q8_0.gguf"
    with FileLock(str(target) + ".lock"):
        if not target.is_file():
            started = time.perf_counter()
            restored(source, target, "Q8_0", gguf.LlamaFileType.MOSTLY_Q8_0)
            log.info("stored %s as Q8_0 in %.1f s", source.name, time.perf_counter() - started)
    return target
