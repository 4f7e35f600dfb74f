"""What `index=` may name, checked once when a collection is created.

- `"flat"`: exact search over the memory-mapped float vectors.
- `"hnsw"`: FAISS HNSW graph (collections made before "auto"; its graph keeps float copies).
- `"auto"` (the default): exact while the collection holds fewer than `AUTO_THRESHOLD` rows,
  then `AUTO_FACTORY`, switched automatically (in the background) once it grows past it.
- `"binary"`: one sign bit per dimension in a FAISS binary index (Hamming candidates).
- any FAISS factory string over float vectors, e.g. `"SQ8"`, `"HNSW32,SQ8"`, `"IVF1024,PQ48"`,
  `"OPQ48,IVF4096,PQ48"` (inner-product metric).

Every approximate kind proposes a pool of candidates (`candidates`: larger for coarser codes),
re-ranked by their exact float scores read from the vector file, so scores are always exact
cosines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from embedstack.errors import InvalidInputError

NAMED_KINDS = ("flat", "hnsw", "auto", "binary")
# Below this many rows exact search over the memory map is fast (~10 ms per query at 384-d on
# 2 cores) and perfect; above it the approximate index pays for its training.
AUTO_THRESHOLD = 50_000
REFINE = 10  # candidates per hit re-ranked by exact score
# Codes of under two bits a dimension (binary, PQ) rank coarsely: re-rank more (their scans are
# cheap). IVF4096,PQ96x4fs at 1M needed the top 400 for recall@10 0.96 (bench/scale.py).
REFINE_COARSE = 40
# One sign bit a dimension ranks coarser still: binary codes at 1M needed the top 1,000 for 0.969.
REFINE_BINARY = 100
COARSE_BITS_PER_DIM = 2
NPROBE = 32  # IVF lists searched per query, at least
PROBE_SHARE = 10  # ... and one list in this many (0.96 at 1M with 384 of 4096 lists)
POOL_HITS = 10  # the pool is `refine` candidates for each of this many hits: see `candidates`
MIN_TRAIN_PER_LIST = 39  # FAISS's own minimum of training points per IVF list


def auto_factory(rows: int, dim: int) -> str:
    """The approximate index "auto" switches to for `rows` rows.

    IVF with 4-bit fast-scan PQ codes, one sub-quantizer per 4 dimensions (48 bytes a 384-d
    vector: 1M -> ~50 MB, far under the 0.6 GB target), re-ranked by exact float scores. On the
    scale bench it beat IVF + 8-bit scalar codes at 100k (recall@10 0.965 vs 0.952, 1.4x the
    queries per CPU-second, 21 vs 46 MB) and at 1M (0.960 vs 0.868; 85 vs 388 MB). nlist ~
    4 sqrt(rows) keeps each probed list small. Dimensions that 4 does not divide fall back to
    SQ8 (fast-scan PQ wants sub-vectors of equal width).
    """
    nlist = 1 << max(4, round(math.log2(4 * math.sqrt(max(rows, 1)))))
    while nlist > 16 and nlist * MIN_TRAIN_PER_LIST > rows:  # enough points to train each list
        nlist //= 2
    if dim % 4 == 0:
        return f"IVF{nlist},PQ{dim // 4}x4fs"
    return f"IVF{nlist},SQ8"


def probes(nlist: int) -> int:
    """IVF lists searched per query."""
    return min(nlist, max(NPROBE, nlist // PROBE_SHARE))


def refine_depth(code_bytes: int, dim: int) -> int:
    """Candidates re-ranked per hit for codes of `code_bytes` a `dim`-d vector."""
    if code_bytes * 8 < COARSE_BITS_PER_DIM * dim:
        return REFINE_COARSE
    return REFINE


def candidates(k: int, refine: int) -> int:
    """Candidates to re-rank for `k` hits: `refine` for each of the first POOL_HITS, at least 2k.

    The pool is what buys recall@10 (IVF-PQ at 1M: 0.96 from the top 400). Hybrid search asks
    for 100 dense candidates to fuse, where ranks past the first ten weigh little: a pool of
    100 x 40 = 4,000 made hybrid p50 at 106k chunks 21.3 ms instead of 14.0.
    """
    return max(min(refine, 2) * k, refine * min(k, POOL_HITS))


@dataclass(frozen=True)
class IndexSpec:
    """A parsed `index=` value: `kind` is "flat", "hnsw", "auto", "binary" or "faiss"."""

    text: str
    kind: str
    factory: str = ""

    @property
    def exact_only(self) -> bool:
        return self.kind == "flat"


def parse_index_spec(text: str, dim: int, hnsw_m: int = 32) -> IndexSpec:
    """The spec for `text`; InvalidInputError (one line) when FAISS cannot build it."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"index must be one of {NAMED_KINDS} or a FAISS factory string")
    if text in ("flat", "auto", "binary"):
        return IndexSpec(text, text)
    if text == "hnsw":
        return IndexSpec(text, "hnsw", f"HNSW{hnsw_m}")
    if text.upper() == "FLAT":
        return IndexSpec(text, "flat")
    import faiss  # the store's own dependency; imported here so config checks stay light

    try:
        built = faiss.index_factory(dim, text, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown"
        raise InvalidInputError(
            f"index {text!r} is not a FAISS factory string FAISS can build for {dim}-d vectors "
            f"({reason[:120]}); use one of {NAMED_KINDS} or e.g. 'SQ8', 'IVF1024,PQ48'"
        ) from None
    del built
    return IndexSpec(text, "faiss", text)


def check_index_spec(text: str, dim: int = 384) -> str:
    """`text` when it is an index this store can build for `dim`-d vectors, else a clear error."""
    parse_index_spec(text, dim)
    return text
