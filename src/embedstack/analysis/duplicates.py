"""Near-duplicate groups, with sentence-transformers' `community_detection` semantics.

Every row whose neighbourhood (rows at cosine ≥ `threshold`, itself included) holds at least
`min_size` rows proposes that neighbourhood as a group, ordered by similarity to it (so the
proposing row comes first); groups are taken biggest first, each keeping only the rows no
bigger group took, and kept while at least `min_size` rows remain. Neighbourhoods come from
FAISS's exact range search, in blocks, instead of sentence-transformers' growing top-k.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedstack.analysis.vectors import as_unit_rows
from embedstack.errors import InvalidInputError

BLOCK = 4096  # query rows per range search: bounds the memory of one block's results


def near_duplicates(vectors: Any, threshold: float = 0.9, min_size: int = 2) -> list[list[int]]:
    """Groups of row positions whose rows are near-duplicates, biggest group first."""
    import faiss

    if not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise InvalidInputError(f"threshold must be a cosine in (0, 1], got {threshold!r}")
    if not isinstance(min_size, int) or isinstance(min_size, bool) or min_size < 2:
        raise InvalidInputError(f"min_size must be a whole number ≥ 2, got {min_size!r}")
    rows = as_unit_rows(vectors)
    index = faiss.IndexFlatIP(rows.shape[1])
    index.add(rows)
    radius = float(threshold) - 1e-6  # float32 rounding puts a row's self-similarity near 1.0
    proposals: list[list[int]] = []
    for start in range(0, len(rows), BLOCK):
        limits, scores, found = index.range_search(rows[start : start + BLOCK], radius)
        for offset in range(len(limits) - 1):
            span = slice(limits[offset], limits[offset + 1])
            members, similarity = found[span], scores[span]
            if len(members) < min_size:
                continue
            order = np.lexsort((-similarity, members != start + offset))  # itself, then closest
            proposals.append([int(m) for m in members[order]])
    proposals.sort(key=len, reverse=True)
    taken: set[int] = set()
    groups = []
    for group in proposals:
        remaining = [row for row in group if row not in taken]
        if len(remaining) >= min_size:
            groups.append(remaining)
            taken.update(remaining)
    return sorted(groups, key=len, reverse=True)  # a trimmed group may now be smaller
