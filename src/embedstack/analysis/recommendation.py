"""Recommendation from liked and disliked examples, with Qdrant's three strategies.

Definitions (Qdrant's recommendation API, v1.6+):
- `average_vector`: search with avg(positive) + (avg(positive) − avg(negative)) (without
  negatives: avg(positive));
- `best_score`: a candidate's score is its best similarity to a positive example, unless it
  is closer to a negative example, then minus the square of that similarity;
- `sum_scores`: the sum of its similarities to the positives minus the sum to the negatives.
The examples themselves are never recommended. Against a store, `best_score` and `sum_scores`
rescore exactly a candidate pool: the nearest rows to each example and to the average
vector (any row that scores high under either strategy is near some positive example).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedstack.analysis.vectors import as_unit_rows
from embedstack.errors import InvalidInputError
from embedstack.store.base import Scored, VectorStore
from embedstack.store.filters import FilterNode

STRATEGIES = ("average_vector", "best_score", "sum_scores")
POOL_PER_EXAMPLE = 10  # candidates per example: this many times k, at least MIN_POOL
MIN_POOL = 100


def check_strategy(strategy: str, positives: int, negatives: int) -> None:
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if positives + negatives == 0:
        raise InvalidInputError("recommend needs at least one positive or negative example")
    if strategy == "average_vector" and positives == 0:
        raise InvalidInputError(
            "average_vector needs at least one positive example "
            "(best_score and sum_scores work from negatives alone)"
        )


def average_vector(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """The unit query vector of the `average_vector` strategy."""
    query = positive.mean(axis=0)
    if len(negative):
        query = 2 * query - negative.mean(axis=0)
    norm = np.linalg.norm(query)
    if norm == 0:
        raise InvalidInputError("the positive and negative examples cancel out")
    return (query / norm).astype(np.float32)


def strategy_scores(
    candidates: np.ndarray, positive: np.ndarray, negative: np.ndarray, strategy: str
) -> np.ndarray:
    """Each candidate row's score under `strategy` (all arrays: unit rows)."""
    if strategy == "average_vector":
        return candidates @ average_vector(positive, negative)
    to_positive = candidates @ positive.T if len(positive) else np.zeros((len(candidates), 0))
    to_negative = candidates @ negative.T if len(negative) else np.zeros((len(candidates), 0))
    if strategy == "sum_scores":
        return to_positive.sum(axis=1) - to_negative.sum(axis=1)
    best_positive = to_positive.max(axis=1) if len(positive) else np.full(len(candidates), -np.inf)
    if not len(negative):
        return best_positive
    best_negative = to_negative.max(axis=1)
    return np.where(best_positive > best_negative, best_positive, -(best_negative**2))


def recommend(
    vectors: Any,
    positive: Any = (),
    negative: Any = (),
    *,
    strategy: str = "average_vector",
    k: int = 10,
    exclude: Sequence[int] = (),
) -> list[tuple[int, float]]:
    """The k best rows of `vectors` for the examples, as (row, score), examples excluded."""
    rows = as_unit_rows(vectors)
    positive, negative = _examples(positive, rows.shape[1]), _examples(negative, rows.shape[1])
    check_strategy(strategy, len(positive), len(negative))
    scores = strategy_scores(rows, positive, negative, strategy)
    scores[list(exclude)] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order if np.isfinite(scores[i])]


def recommend_in_store(
    store: VectorStore,
    positive: np.ndarray,
    negative: np.ndarray,
    *,
    strategy: str,
    k: int,
    where: FilterNode | None = None,
    exclude: Sequence[str] = (),
) -> Scored:
    """The k best stored rows (id, score) for the examples (unit rows), `exclude` left out."""
    check_strategy(strategy, len(positive), len(negative))
    left_out = set(exclude)
    if strategy == "average_vector":
        query = average_vector(positive, negative)[None, :]
        found = store.dense(query, k + len(left_out), where)[0]
        return [(id_, score) for id_, score in found if id_ not in left_out][:k]
    pool = max(POOL_PER_EXAMPLE * k, MIN_POOL) + len(left_out)
    probes = (
        [*positive, average_vector(positive, negative)] if len(positive) else [-negative.mean(0)]
    )
    queries = as_unit_rows(np.stack(probes))
    ids = list(
        dict.fromkeys(id_ for found in store.dense(queries, pool, where) for id_, _ in found)
    )
    ids = [id_ for id_ in ids if id_ not in left_out]
    if not ids:
        return []
    scores = strategy_scores(store.vectors(ids), positive, negative, strategy)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(ids[i], float(scores[i])) for i in order]


def _examples(examples: Any, dim: int) -> np.ndarray:
    if examples is None or (not isinstance(examples, np.ndarray) and not len(examples)):
        return np.zeros((0, dim), dtype=np.float32)
    found = as_unit_rows(np.atleast_2d(np.asarray(examples, dtype=np.float32)), what="examples")
    if found.shape[1] != dim:
        raise InvalidInputError(f"examples have {found.shape[1]} dimensions, vectors have {dim}")
    return found


@dataclass
class Profile:
    """A user's taste: the ids they liked and disliked, most recent last, at most `max_items`
    of each. `Collection.recommend(profile=...)` turns it into a profile vector (the
    `average_vector` of its items) or any other strategy's scores."""

    liked: list[str] = field(default_factory=list)
    disliked: list[str] = field(default_factory=list)
    max_items: int = 200

    def like(self, *ids: str) -> Profile:
        return self._move(ids, self.liked, self.disliked)

    def unlike(self, *ids: str) -> Profile:
        return self._move(ids, self.disliked, self.liked)

    def forget(self, *ids: str) -> Profile:
        gone = set(ids)
        self.liked = [i for i in self.liked if i not in gone]
        self.disliked = [i for i in self.disliked if i not in gone]
        return self

    def _move(self, ids: Sequence[str], into: list[str], out_of: list[str]) -> Profile:
        for id_ in ids:
            if not isinstance(id_, str):
                raise InvalidInputError(f"profile items are record ids, got {type(id_).__name__}")
            for history in (into, out_of):
                if id_ in history:
                    history.remove(id_)
            into.append(id_)
        del into[: max(0, len(into) - self.max_items)]
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Profile:
        if not isinstance(data, dict):
            raise InvalidInputError(f"a profile is a JSON object, got {type(data).__name__}")
        try:
            profile = cls(max_items=int(data.get("max_items", 200)))
            profile.like(*data.get("liked", []))
            profile.unlike(*data.get("disliked", []))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a profile: {exc}") from exc
        return profile

    def save(self, path: str | Path) -> None:
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(json.dumps(self.to_dict(), indent=1))
        partial.replace(target)

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"cannot read profile {path}: {exc}") from exc
