"""The searchable side of a collection: exact search over the memory-mapped float vectors, or
approximate candidates from FAISS segments re-ranked by their exact float scores.

The floats live once, in the vector file (`vector_file.py`); FAISS holds only codes (scalar,
PQ or binary) or an HNSW graph, split into segments over vid ranges (`segments.py`). Deleted
rows are tombstones in a bitmap of live vids; a segment a quarter dead is rebuilt from the
vector file. Kinds are parsed by `index_spec.py`; "auto" and kinds that need training search
exactly until they can be built, which the store does in the background (`rebuild_due`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embedstack.store.index_spec import (
    AUTO_THRESHOLD,
    MIN_TRAIN_PER_LIST,
    REFINE,
    REFINE_BINARY,
    IndexSpec,
    auto_factory,
    candidates,
    parse_index_spec,
    probes,
    refine_depth,
)
from embedstack.store.segments import (
    TRAINED_FILE,
    Segment,
    chain,
    read_index,
    segment_files,
    segment_path,
    write_atomically,
)
from embedstack.store.vector_file import VectorFile

FEW_QUERIES = 8  # below this many queries a FAISS search runs on this thread alone

log = logging.getLogger(__name__)

REBUILD_DEAD_FRACTION = 0.25  # rebuild a segment once this share of its rows is deleted
MERGE_RATIO = 2  # merge the newest two segments while the older is at most this times larger
MAX_SEGMENTS = 12
EXACT_BLOCK = 65_536  # rows per matrix product in exact search (bounds its temporary memory)
TRAIN_SAMPLE = 100_000  # rows k-means and codebooks train on, at most

INDEX_KINDS = ("flat", "hnsw", "auto", "binary")  # plus FAISS factory strings


def _check(spec: str, dim: int, hnsw_m: int) -> IndexSpec:
    return parse_index_spec(spec, dim, hnsw_m)


class VectorIndex:
    """Live rows keyed by vid; `search` returns exact scores whatever proposes the candidates.

    Not thread-safe by itself: the store searches under a shared lock and changes it under an
    exclusive one.
    """

    def __init__(
        self,
        dim: int,
        spec: str,
        vectors: VectorFile,
        hnsw_m: int = 32,
        ef_search: int = 64,
        auto_threshold: int | None = None,
    ) -> None:
        self.dim = dim
        self.spec = _check(spec, dim, hnsw_m)
        self.kind = self.spec.kind
        self.vectors = vectors
        self.ef_search = ef_search
        self.auto_threshold = AUTO_THRESHOLD if auto_threshold is None else auto_threshold
        self.hi = 0  # vids below this are known (live or dead)
        self.epoch = 0  # the vector file (compaction epoch) the vids refer to
        self._live = np.zeros(0, dtype=bool)
        self._count = 0
        self.segments: list[Segment] = []
        self._template: Any = None  # an empty, trained index that segments are cloned from
        self._template_saved = False
        self._factory = self.spec.factory

    # ---- state -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    @property
    def binary(self) -> bool:
        return self.kind == "binary"

    @property
    def approximate(self) -> bool:
        return bool(self.segments) or self._template is not None

    @property
    def dead_fraction(self) -> float:
        held = sum(s.count for s in self.segments)
        if not held:
            return 0.0
        live = sum(int(self._live[s.lo : s.hi].sum()) for s in self.segments)
        return (held - live) / held

    @property
    def rebuild_due(self) -> bool:
        """Whether a rebuild would switch to (or refresh) the approximate index."""
        if not self.approximate:
            return self._wants_index(self._count)
        return any(self._segment_dead(s) > REBUILD_DEAD_FRACTION for s in self.segments)

    def _segment_dead(self, segment: Segment) -> float:
        if not segment.count:
            return 0.0
        return 1 - int(self._live[segment.lo : segment.hi].sum()) / segment.count

    def _wants_index(self, rows: int) -> bool:
        if self.kind == "flat":
            return False
        if self.kind == "auto":
            return rows >= self.auto_threshold
        minimum = self._train_minimum()
        return minimum <= 1 or rows >= minimum  # untrained kinds index from the first row

    def _train_minimum(self) -> int:
        if self.kind in ("hnsw", "binary"):
            return 1
        probe = faiss.index_factory(self.dim, self._factory, faiss.METRIC_INNER_PRODUCT)
        if probe.is_trained:
            return 1
        lists = [int(n) for n in re.findall(r"IVF(\d+)", self._factory)]
        minimum = MIN_TRAIN_PER_LIST * lists[0] if lists else 1
        if "PQ" in self._factory or "RQ" in self._factory:
            minimum = max(minimum, 10 * 256)  # 256 centroids per sub-quantizer
        return max(minimum, 256)

    def _grow(self, hi: int) -> None:
        if hi > len(self._live):
            bigger = np.zeros(max(hi, 2 * len(self._live), 1024), dtype=bool)
            bigger[: len(self._live)] = self._live
            self._live = bigger
        self.hi = max(self.hi, hi)

    def ids(self) -> np.ndarray:
        """The live vids."""
        return np.flatnonzero(self._live[: self.hi]).astype(np.int64)

    # ---- building --------------------------------------------------------------------------

    def build(self, live: np.ndarray, hi: int, folder: Path | None = None, epoch: int = 0) -> None:
        """Set the live rows (from one database snapshot), then build or load the index:
        saved segments of this epoch that hold every live row of their range are reused,
        the rest is encoded from the vector file."""
        self.set_rows(live, hi)
        self.epoch = epoch
        if not self._wants_index(self._count) and not self._has_template(folder, epoch):
            return
        if self.kind == "auto" and not self._factory:
            self._factory = auto_factory(self._count, self.dim)
        if not self._load_template(folder, epoch):
            return
        position = 0
        if folder is not None:
            files = segment_files(folder, epoch)
            for lo, top in chain(files):
                if top > hi:
                    break
                segment = self._read_segment(files[(lo, top)], lo, top)
                if segment is None:
                    break
                if self._segment_dead(segment) > REBUILD_DEAD_FRACTION:
                    segment = self._encode(lo, top)
                self.segments.append(segment)
                position = top
        if position < hi:
            self.segments.append(self._encode(position, hi))

    def set_rows(self, live: np.ndarray, hi: int) -> None:
        """The live rows only, nothing built (what `check_files` needs)."""
        self._grow(hi)
        self._live[:] = False
        self._live[live] = True
        self._count = len(live)
        self.segments = []

    def _has_template(self, folder: Path | None, epoch: int) -> bool:
        """A trained auto index already exists (so it stays approximate below the threshold
        after deletes, instead of flapping)."""
        return folder is not None and (folder / TRAINED_FILE.format(epoch=epoch)).exists()

    def _load_template(self, folder: Path | None, epoch: int) -> bool:
        """The empty trained index, read or trained now; False when too few rows to train."""
        if self._template is not None:
            return True
        if folder is not None:
            path = folder / TRAINED_FILE.format(epoch=epoch)
            if path.exists():
                try:
                    template = read_index(path, self.binary)
                    if (
                        template.d == (self._bits if self.binary else self.dim)
                        and not template.ntotal
                    ):
                        self._template, self._template_saved = template, True
                        return True
                except (RuntimeError, ValueError):
                    pass  # a damaged cache file: train again
        if not self._wants_index(self._count):
            return False
        self._template = self._train()
        self._template_saved = False
        return True

    @property
    def _bits(self) -> int:
        return -(-self.dim // 8) * 8

    def _train(self) -> Any:
        if self.binary:
            return faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(self._bits))
        base = faiss.index_factory(self.dim, self._factory, faiss.METRIC_INNER_PRODUCT)
        if not base.is_trained:
            live = self.ids()
            rng = np.random.default_rng(0)
            sample = np.sort(rng.choice(live, min(len(live), TRAIN_SAMPLE), replace=False))
            rows = self.vectors.rows(self.hi)
            base.train(np.ascontiguousarray(rows[sample], dtype=np.float32))
        if "HNSW" in self._factory:
            graph = faiss.downcast_index(base)
            if hasattr(graph, "hnsw"):
                graph.hnsw.efConstruction = max(40, graph.hnsw.efConstruction)
        return faiss.IndexIDMap(base)

    def _empty_segment(self, lo: int) -> Segment:
        template = self._template
        index: Any
        if self.binary:
            index = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(self._bits))
        else:
            index = faiss.clone_index(template)
        return Segment(lo, lo, index)

    def _codes(self, vectors: np.ndarray) -> np.ndarray:
        if self.binary:
            return np.packbits(vectors > 0, axis=1)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode(self, lo: int, hi: int) -> Segment:
        """A fresh segment holding the live rows of [lo, hi), read from the vector file."""
        segment = self._empty_segment(lo)
        segment.hi = hi
        live = lo + np.flatnonzero(self._live[lo:hi]).astype(np.int64)
        rows = self.vectors.rows(hi)
        for start in range(0, len(live), EXACT_BLOCK):
            block = live[start : start + EXACT_BLOCK]
            segment.index.add_with_ids(self._codes(rows[block]), block)
        return segment

    def _read_segment(self, path: Path, lo: int, hi: int) -> Segment | None:
        """A saved segment, if readable, of this index's kind and holding every live row."""
        try:
            index = read_index(path, self.binary)
        except (RuntimeError, ValueError):
            return None
        segment = Segment(lo, hi, index, path)
        try:
            held = segment.ids()
        except AttributeError:  # not an id-mapped index: not one of ours
            return None
        if len(held) and (held.min() < lo or held.max() >= hi):
            return None
        live = lo + np.flatnonzero(self._live[lo:hi])
        if not np.isin(live, held, assume_unique=True).all():
            return None
        return segment

    def release(self) -> None:
        """Drop the segments and the vector file's memory map (the store is closing)."""
        self.segments = []
        self.vectors = VectorFile(self.vectors.path, self.dim)

    # ---- changes ---------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """New rows (ascending vids at or past `hi`)."""
        if not len(ids):
            return
        top = int(ids.max()) + 1
        self._grow(top)
        self._live[ids] = True
        self._count += len(ids)
        if not self.approximate:
            return
        tail = self.segments[-1] if self.segments else None
        if tail is None or tail.path is not None:
            tail = self._empty_segment(int(ids.min()))
            self.segments.append(tail)
        tail.index.add_with_ids(self._codes(vectors), np.asarray(ids, dtype=np.int64))
        tail.hi = max(tail.hi, top)

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[ids < self.hi]
        self._count -= int(self._live[ids].sum())
        self._live[ids] = False

    def mark_dead(self, ids: set[int]) -> None:
        self.remove(np.fromiter(ids, dtype=np.int64, count=len(ids)))

    # ---- search ----------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (exact scores, vids) per query; missing slots have vid -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            allowed = allowed[allowed < self.hi]
            allowed = allowed[self._live[allowed]]
        subset = allowed is not None and len(allowed) <= max(4096, 4 * k * REFINE)
        if not self.segments or subset:
            return self._exact(queries, k, allowed)
        pool = self._candidates(queries, candidates(k, self._refine()), allowed)
        return self._rerank(queries, k, pool)

    def _exact(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        nq = len(queries)
        best_s = np.full((nq, 0), -np.inf, dtype=np.float32)
        best_i = np.full((nq, 0), -1, dtype=np.int64)
        rows = self.vectors.rows(self.hi)
        if allowed is not None:
            blocks = [allowed[s : s + EXACT_BLOCK] for s in range(0, len(allowed), EXACT_BLOCK)]
            chunks = ((b, rows[b]) for b in blocks)
        else:
            chunks = (
                (np.arange(s, min(s + EXACT_BLOCK, self.hi)), rows[s : s + EXACT_BLOCK])
                for s in range(0, self.hi, EXACT_BLOCK)
            )
        for vids, matrix in chunks:
            scores = queries @ np.asarray(matrix, dtype=np.float32).T
            if allowed is None:
                scores[:, ~self._live[vids]] = -np.inf
            ids = np.broadcast_to(vids, scores.shape)
            best_s = np.concatenate([best_s, scores], axis=1)
            best_i = np.concatenate([best_i, ids], axis=1)
            if best_s.shape[1] > k:
                top = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
                best_s = np.take_along_axis(best_s, top, axis=1)
                best_i = np.take_along_axis(best_i, top, axis=1)
        order = np.argsort(-best_s, axis=1, kind="stable")
        best_s = np.take_along_axis(best_s, order, axis=1)
        best_i = np.take_along_axis(best_i, order, axis=1)
        best_i[~np.isfinite(best_s)] = -1
        return best_s, best_i

    def _selector(self, allowed: np.ndarray | None) -> tuple[Any, list[Any]]:
        selector: Any
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed)
            return selector, [selector]
        bits = np.packbits(self._live[: self.hi], bitorder="little")
        selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
        return selector, [selector, bits]

    def _params(self, index: Any, selector: Any, k: int) -> Any:
        index = faiss.downcast_index(index)
        if isinstance(index, faiss.IndexIDMap):
            return self._params(index.index, selector, k)
        if isinstance(index, faiss.IndexPreTransform):
            params = faiss.SearchParametersPreTransform()
            params.index_params = self._params(index.index, selector, k)
            return params
        if isinstance(index, faiss.IndexIVF):
            nprobe = probes(index.nlist)
            return faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)  # type: ignore[call-arg]
        if isinstance(index, faiss.IndexHNSW):
            return faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k), sel=selector)  # type: ignore[attr-defined]
        return faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]

    def _refine(self) -> int:
        """Candidates per hit, by the bytes the template's codes keep a vector (so a collection
        keeps the depth its saved index was built for). An HNSW graph over floats scores
        exactly but finds approximately: its depth sets efSearch."""
        if self.binary:
            return REFINE_BINARY
        try:
            index = faiss.downcast_index(self._template.index)
            if isinstance(index, faiss.IndexHNSW):
                index = faiss.downcast_index(index.storage)
            return refine_depth(index.sa_code_size(), self.dim)
        except (AttributeError, RuntimeError):  # no template, or codes of no fixed size
            return REFINE

    def _candidates(self, queries: np.ndarray, n: int, allowed: np.ndarray | None) -> np.ndarray:
        if len(queries) >= FEW_QUERIES:
            return self._search_segments(queries, n, allowed)
        # A few queries on FAISS's OpenMP team cost more in waking the team than in searching
        # (HNSW on one query under load: 12 ms with 2 threads, 0.6 ms with one; see
        # docs/benchmarks.md, hybrid latency). libgomp keeps the setting per calling thread.
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._search_segments(queries, n, allowed)
        finally:
            faiss.omp_set_num_threads(previous)

    def _search_segments(
        self, queries: np.ndarray, n: int, allowed: np.ndarray | None
    ) -> np.ndarray:
        selector, keep_alive = self._selector(allowed)
        found = []
        codes = self._codes(queries)
        for segment in self.segments:
            if not segment.count:
                continue
            depth = min(n, segment.count)
            if self.binary:
                params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
                keep_alive.append(params)
                _, ids = segment.index.search(codes, depth, params=params)
            else:
                params = self._params(segment.index, selector, depth)
                keep_alive.append(params)
                _, ids = segment.index.search(codes, depth, params=params)
            found.append(ids)
        del keep_alive
        if not found:
            return np.full((len(queries), 1), -1, dtype=np.int64)
        return np.concatenate(found, axis=1)

    def _rerank(
        self, queries: np.ndarray, k: int, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = self.vectors.rows(self.hi)
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        for q, (query, row) in enumerate(zip(queries, candidates, strict=True)):
            vids = np.unique(row[row >= 0])
            vids = vids[self._live[vids]]
            if not len(vids):
                continue
            scores = np.asarray(rows[vids], dtype=np.float32) @ query
            top = np.argsort(-scores, kind="stable")[:k]
            out_s[q, : len(top)] = scores[top]
            out_i[q, : len(top)] = vids[top]
        return out_s, out_i

    # ---- persistence -----------------------------------------------------------------------

    def save(self, folder: Path, epoch: int) -> int:
        """Write what is not on disk yet: the trained template once, then only the segments
        added or rebuilt since the last save; merge small segments (amortised). Returns bytes
        written. Files of other epochs and superseded segments are removed."""
        written = 0
        if self._template is not None and not self._template_saved:
            path = folder / TRAINED_FILE.format(epoch=epoch)
            write_atomically(self._template, path, self.binary)
            self._template_saved = True
            written += path.stat().st_size
        self._merge()
        for segment in self.segments:
            if segment.path is None and segment.count:
                path = segment_path(folder, epoch, segment.lo, segment.hi)
                write_atomically(segment.index, path, self.binary)
                segment.path = path
                written += path.stat().st_size
        self.segments = [s for s in self.segments if s.count or s.path]
        self._tidy(folder, epoch)
        return written

    def _merge(self) -> None:
        """Merge the newest segments while they are comparable in size (an LSM tier), and any
        pair once there are too many: each row is rewritten O(log n) times in all."""
        while len(self.segments) >= 2:
            older, newer = self.segments[-2], self.segments[-1]
            if (
                older.count > MERGE_RATIO * max(newer.count, 1)
                and len(self.segments) <= MAX_SEGMENTS
            ):
                break
            merged = self._encode(older.lo, newer.hi)
            self.segments = [*self.segments[:-2], merged]  # one swap: searches hold the list

    def _tidy(self, folder: Path, epoch: int) -> None:
        keep = {s.path.name for s in self.segments if s.path is not None}
        keep.add(TRAINED_FILE.format(epoch=epoch))
        for path in folder.glob("index-*.faiss"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
        for old in folder.glob("vectors-*.faiss"):  # checkpoints of the layout before segments
            old.unlink(missing_ok=True)

    @property
    def dirty(self) -> bool:
        """Whether something built in memory is not saved yet."""
        unsaved_template = self._template is not None and not self._template_saved
        return unsaved_template or any(s.path is None and s.count for s in self.segments)

    def check_files(self, folder: Path, epoch: int) -> list[str]:
        """Problems with this epoch's saved segments (each is rebuilt on open, never served)."""
        problems = []
        for (lo, hi), path in sorted(segment_files(folder, epoch).items()):
            if hi > self.hi or self._read_segment(path, lo, hi) is None:
                problems.append(
                    f"{path.name} is unreadable or lacks stored vectors (rebuilt on open)"
                )
        return problems
