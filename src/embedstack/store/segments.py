"""FAISS segments: the approximate part of a vector index, covering vid ranges [lo, hi).

Vids are never reused and a vid's vector never changes, so a segment built for [lo, hi) stays
valid until `compact` renumbers rows (a new epoch): rows deleted since are tombstones, excluded
at search time by a bitmap of live vids. Segments are files `index-<epoch>-<lo>-<hi>.faiss`
beside the database (a cache of SQLite + the vector file, like every index file here): a close
writes only the rows added since the last one, and small segments are merged as they pile up.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

SEGMENT_FILE = re.compile(r"index-(\d+)-(\d+)-(\d+)\.faiss")
TRAINED_FILE = "index-{epoch}-trained.faiss"


@dataclass
class Segment:
    lo: int
    hi: int
    index: Any  # faiss.IndexIDMap or faiss.IndexBinaryIDMap
    path: Path | None = None  # the file it was read from or saved to; None: not saved yet

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)


def segment_path(folder: Path, epoch: int, lo: int, hi: int) -> Path:
    return folder / f"index-{epoch}-{lo}-{hi}.faiss"


def segment_files(folder: Path, epoch: int) -> dict[tuple[int, int], Path]:
    """This epoch's segment files by (lo, hi)."""
    found = {}
    for path in folder.glob("index-*.faiss"):
        match = SEGMENT_FILE.fullmatch(path.name)
        if match and int(match.group(1)) == epoch:
            found[(int(match.group(2)), int(match.group(3)))] = path
    return found


def chain(files: dict[tuple[int, int], Path]) -> list[tuple[int, int]]:
    """The ranges that cover [0, h) without overlap for the largest h, longest first."""
    by_lo: dict[int, int] = {}
    for lo, hi in files:
        by_lo[lo] = max(hi, by_lo.get(lo, -1))
    out, position = [], 0
    while position in by_lo and by_lo[position] > position:
        out.append((position, by_lo[position]))
        position = by_lo[position]
    return out


def write_atomically(index: Any, path: Path, binary: bool) -> None:
    """Write to a temporary name (unique per process), fsync, then rename over `path`."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        if binary:
            faiss.write_index_binary(index, str(tmp))
        else:
            faiss.write_index(index, str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_index(path: Path, binary: bool) -> Any:
    return faiss.read_index_binary(str(path)) if binary else faiss.read_index(str(path))
