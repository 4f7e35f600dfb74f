"""Find the files to ingest under the paths given, without looping on symlinks; read one.

Names that are not valid UTF-8 are reported, not ingested: the path is the key a chunk is
stored and found under, and such a path can be neither stored nor printed as it is. Pipes,
devices and sockets are reported too (reading one would hang, or never end).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from embedstack.errors import IngestError
from embedstack.ingest.detect import EXTENSIONS
from embedstack.rows import is_utf8


@dataclass(frozen=True)
class FileProblem:
    path: str
    reason: str


@dataclass
class Discovery:
    files: list[Path]  # absolute, symlinks not resolved (the path the user sees is the key)
    roots: list[Path]  # folders walked (for --sync)
    problems: list[FileProblem]


def printable(path: str | Path) -> str:
    """The path as it can be printed and stored: bytes that are not UTF-8 as `\\xe9`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _name_problem(path: Path, is_folder: bool) -> FileProblem | None:
    """A problem when the path is not valid UTF-8: in the name itself, or in a folder above."""
    if is_utf8(str(path)):
        return None
    kind = "file" if not is_folder and not is_utf8(path.name) else "folder"
    return FileProblem(printable(path), f"{kind} name is not valid UTF-8")


def discover(
    paths: list[str | Path], glob: str | None = None, extensions: frozenset[str] | None = None
) -> Discovery:
    """Files under `paths`: explicit files always; in folders, supported (or `glob`) ones.

    Supported means a text format's extension, or none at all; or, when `extensions` is
    given (an image or sequence collection), one of those. Hidden files and folders are
    skipped. A folder reached twice through symlinks is reported as a symlink loop once and
    not walked again.
    """
    found = Discovery([], [], [])
    seen_files: set[Path] = set()
    for raw in paths:
        path = Path(os.path.abspath(os.path.expanduser(raw)))
        problem = _name_problem(path, path.is_dir())
        if problem:
            found.problems.append(problem)
        elif path.is_dir():
            found.roots.append(path)
            for file in _walk(path, glob, extensions, found.problems):
                if file not in seen_files:
                    seen_files.add(file)
                    found.files.append(file)
        elif path.exists() or path.is_symlink():
            if path not in seen_files:
                seen_files.add(path)
                found.files.append(path)
        else:
            found.problems.append(FileProblem(printable(path), "no such file or folder"))
    return found


def _walk(
    root: Path, glob: str | None, extensions: frozenset[str] | None, problems: list[FileProblem]
):
    visited: set[tuple[int, int]] = set()

    def on_error(error: OSError) -> None:
        problems.append(FileProblem(printable(error.filename or ""), os_reason(error)))

    for folder, subfolders, names in os.walk(root, followlinks=True, onerror=on_error):
        try:
            info = os.stat(folder)
        except OSError as error:  # removed, or made unreadable, since it was listed
            on_error(error)
            subfolders[:] = []
            continue
        if (info.st_dev, info.st_ino) in visited:
            problems.append(FileProblem(folder, "symlink loop (folder already visited)"))
            subfolders[:] = []
            continue
        visited.add((info.st_dev, info.st_ino))
        kept = []
        for name in sorted(d for d in subfolders if not d.startswith(".")):
            problem = _name_problem(Path(folder) / name, is_folder=True)
            if problem:
                problems.append(problem)
            else:
                kept.append(name)
        subfolders[:] = kept
        for name in sorted(names):
            path = Path(folder) / name
            if not name.startswith(".") and _wanted(path.relative_to(root), glob, extensions):
                problem = _name_problem(path, is_folder=False)
                if problem:
                    problems.append(problem)
                else:
                    yield path


def _wanted(relative: Path, glob: str | None, extensions: frozenset[str] | None) -> bool:
    if glob is None and extensions is not None:
        return relative.suffix.lower() in extensions
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


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "named pipe"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISDIR, "folder"),
)


# O_NONBLOCK: opening a pipe put in the file's place since the stat must not wait for a writer
# (POSIX only, like pipes that hang an open; O_BINARY is Windows only).
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_OPEN_FLAGS = os.O_RDONLY | _NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


def _require_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "special file")
        raise IngestError(f"not a regular file ({kind})")


def read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes; OSError for unreadable files, IngestError for a pipe, device or
    socket (checked before opening, and again on the open file in case it was swapped), and
    when over `max_bytes` (by its size, or by what was read: at most `max_bytes` + 1 bytes)."""
    _require_regular(os.stat(path).st_mode)  # follows symlinks: a link to /dev/zero is a device
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        _require_regular(info.st_mode)
        if _NONBLOCK:
            os.set_blocking(fd, True)
        if info.st_size > max_bytes:
            raise _too_large(f"{info.st_size / 1e6:,.1f} MB", max_bytes)
        data = _read_at_most(fd, max_bytes + 1, info.st_size)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while being read, or stat said 0 (/proc files)
        raise _too_large(f"over {_megabytes(max_bytes)} MB when read", max_bytes)
    return data


def _read_at_most(fd: int, limit: int, size: int) -> bytes:
    """Up to `limit` bytes, whatever `size` (from stat) said; asks for size + 1 first, so a
    small file costs one read and no buffer of `limit` bytes (which read(limit) allocates)."""
    parts: list[bytes] = []
    total = 0
    while total < limit:
        piece = os.read(fd, min(limit - total, max(size - total + 1, 1 << 20)))
        if not piece:
            break
        parts.append(piece)
        total += len(piece)
    return b"".join(parts)


def _too_large(size: str, max_bytes: int) -> IngestError:
    return IngestError(
        f"file too large: {size} (limit {_megabytes(max_bytes)} MB; raise it with --max-file-mb)"
    )


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.6g}"  # 200, 0.5, 0.0002
