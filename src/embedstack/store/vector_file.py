"""The float32 vectors of a collection, stored once, in one append-only file read by memory map.

Row `vid` lives at byte `vid * dim * 4` (vids are never reused, so a row never moves until
`compact` writes a new file). A write transaction writes its rows *before* SQLite's COMMIT and
inside its lock (BEGIN IMMEDIATE serialises writers of every process), and `next_vid` in SQLite
only moves on COMMIT: bytes past the committed rows are unreferenced and overwritten later, so
a crash can never leave a committed row without its vector. Deleted rows stay as holes until
`compact`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

ROW_DTYPE = np.dtype("<f4")
VECTOR_FILE_PREFIX = "vectors-"
VECTOR_FILE_SUFFIX = ".f32"


def vector_file_name(epoch: int) -> str:
    """The file of compaction epoch `epoch` (compact switches to the next one)."""
    return f"{VECTOR_FILE_PREFIX}{epoch}{VECTOR_FILE_SUFFIX}"


class VectorFile:
    """Rows of `dim` float32 values keyed by vid; reads share one read-only memory map."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self.row_bytes = dim * ROW_DTYPE.itemsize
        self._map: np.ndarray = np.zeros((0, dim), dtype=ROW_DTYPE)
        self._lock = threading.Lock()

    def write(self, first_vid: int, vectors: np.ndarray) -> None:
        """Write rows `first_vid…` and fsync them; OSError (a full disk) changes nothing that
        SQLite refers to."""
        data = np.ascontiguousarray(vectors, dtype=ROW_DTYPE)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            view = memoryview(data.tobytes())
            offset = first_vid * self.row_bytes
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
            os.fsync(fd)
        finally:
            os.close(fd)

    def rows(self, count: int) -> np.ndarray:
        """A read-only (count, dim) view of the first `count` rows, re-mapped when the file grew.

        Re-mapping swaps the array object; a search holding the old one reads on safely."""
        current = self._map
        if len(current) >= count:
            return current[:count]
        with self._lock:
            if len(self._map) < count:
                size = self.path.stat().st_size // self.row_bytes if self.path.exists() else 0
                if size < count:
                    raise OSError(f"{self.path} holds {size} rows, the database {count}")
                mapped = np.memmap(self.path, dtype=ROW_DTYPE, mode="r", shape=(size, self.dim))
                # A plain ndarray over the same map (it keeps the map alive): np.memmap's
                # __getitem__ costs ~0.2 ms a query in the re-rank's fancy indexing.
                self._map = mapped.view(np.ndarray)
            return self._map[:count]

    def stored_rows(self) -> int:
        return self.path.stat().st_size // self.row_bytes if self.path.exists() else 0


class ArrayVectors(VectorFile):
    """Vectors of an old collection (a SQLite table) in a read-only folder, held in memory:
    the folder cannot be migrated, but it can still be searched."""

    def __init__(self, path: Path, dim: int, matrix: np.ndarray) -> None:
        super().__init__(path, dim)
        self._map = matrix

    def write(self, first_vid: int, vectors: np.ndarray) -> None:  # pragma: no cover
        raise OSError(f"{self.path.parent} is read-only")

    def rows(self, count: int) -> np.ndarray:
        return self._map[:count]

    def stored_rows(self) -> int:
        return len(self._map)
