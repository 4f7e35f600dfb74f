"""Find the files to ingest under the paths given, without looping on symlinks."""

from __future__ import annotations

import errno
import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from embedstack.errors import IngestError
from embedstack.ingest.detect import EXTENSIONS


@dataclass(frozen=True)
class FileProblem:
    path: str
    reason: str


@dataclass
class Discovery:
    files: list[Path]  # absolute, symlinks not resolved (the path the user sees is the key)
    roots: list[Path]  # folders walked (for --sync)
    problems: list[FileProblem]


def discover(paths: list[str | Path], glob: str | None = None) -> Discovery:
    """Files under `paths`: explicit files always; in folders, supported (or `glob`) ones.

    Hidden files and folders are skipped. A folder reached twice through symlinks is reported
    as a symlink loop once and not walked again.
    """
    found = Discovery([], [], [])
    seen_files: set[Path] = set()
    for raw in paths:
        path = Path(os.path.abspath(os.path.expanduser(raw)))
        if path.is_dir():
            found.roots.append(path)
            for file in _walk(path, glob, found.problems):
                if file not in seen_files:
                    seen_files.add(file)
                    found.files.append(file)
        elif path.exists() or path.is_symlink():
            if path not in seen_files:
                seen_files.add(path)
                found.files.append(path)
        else:
            found.problems.append(FileProblem(str(path), "no such file or folder"))
    return found


def _walk(root: Path, glob: str | None, problems: list[FileProblem]):
    visited: set[tuple[int, int]] = set()

    def on_error(error: OSError) -> None:
        problems.append(FileProblem(str(error.filename), os_reason(error)))

    for folder, subfolders, names in os.walk(root, followlinks=True, onerror=on_error):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in visited:
            problems.append(FileProblem(folder, "symlink loop (folder already visited)"))
            subfolders[:] = []
            continue
        visited.add((stat.st_dev, stat.st_ino))
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            if not name.startswith(".") and _wanted(path.relative_to(root), glob):
                yield path


def _wanted(relative: Path, glob: str | None) -> bool:
    if glob is None:
        return relative.suffix.lower() in EXTENSIONS or not relative.suffix
    return fnmatch.fnmatch(relative.as_posix(), glob) or fnmatch.fnmatch(relative.name, glob)


def os_reason(error: OSError) -> str:
    """A short, stable reason for an OS error on a user file."""
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.ENOENT:
        return "broken symlink (target missing)" if error.filename and os.path.islink(
            error.filename) else "no such file"  # fmt: skip
    return error.strerror or str(error)


def read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes; OSError for unreadable files, IngestError when over `max_bytes`."""
    size = os.stat(path).st_size
    if size > max_bytes:
        raise IngestError(
            f"file too large: {size / 1e6:,.1f} MB (limit {max_bytes / 1e6:,.0f} MB; "
            "raise it with --max-file-mb)"
        )
    with open(path, "rb") as handle:
        return handle.read()
