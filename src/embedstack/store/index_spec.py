"""What `index=` may name, checked once when a collection is created.

- `"flat"`: exact search over the memory-mapped float vectors.
- `"hnsw"`: FAISS HNSW graph (collections made before "auto"; its graph keeps float copies).
- `"auto"` (the default): exact while the collection holds fewer than `AUTO_THRESHOLD` rows,
  then `AUTO_FACTORY`, switched automatically (in the background) once it grows past it.
- `"binary"`: one sign bit per dimension in a FAISS binary index (Hamming candidates).
- any FAISS factory string over float vectors, e.g. `"SQ8"`, `"HNSW32,SQ8"`, `"IVF1024,PQ48"`,
  `"OPQ48,IVF4096,PQ48"` (inner-product metric).

Every approximate kind proposes `k * REFINE` candidates, re-ranked by their exact float scores
read from the vector file, so scores are always exact cosines.
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
REFINE_BINARY = 40  # one bit a dimension ranks coarsely: re-rank more (Hamming search is cheap)
NPROBE = 32  # IVF lists searched per query
MIN_TRAIN_PER_LIST = 39  # FAISS's own minimum of training points per IVF list


def auto_factory(rows: int, dim: int) -> str:
    """The approximate index "auto" switches to for `rows` rows.

    IVF with 8-bit scalar codes: a quarter of the float size in RAM (1M x 384 -> 384 MB, under
    the 0.6 GB target), no codebook to train beyond per-dimension ranges, and recall@10 after
    float re-ranking indistinguishable from exact on real embeddings; nlist ~ 4 sqrt(rows)
    keeps each probed list small. PQ (`"IVF…,PQ48"`) is the choice when memory matters more
    (48 bytes a vector) at slightly lower recall.
    """
    nlist = 1 << max(4, round(math.log2(4 * math.sqrt(max(rows, 1)))))
    while nlist > 16 and nlist * MIN_TRAIN_PER_LIST > rows:  # enough points to train each list
        nlist //= 2
    return f"IVF{nlist},SQ8"


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
