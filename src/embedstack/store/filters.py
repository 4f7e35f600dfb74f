"""Metadata filters (a MongoDB-like subset): one backend-neutral parser and reference evaluator.

`parse_filter` validates a whole filter and returns an immutable tree of `FilterNode`s; each
store backend compiles that tree its own way (`sqlite_filters.compile_sqlite` for the embedded
SQLite store). `matches` evaluates a tree against one metadata dict in Python with exactly the
semantics every backend must have; contract and consistency tests use it as the reference.

Grammar::

    {"lang": "en"}                          equality (shorthand for {"$eq": "en"})
    {"year": {"$gte": 2020, "$lt": 2024}}   several operators on one field are ANDed
    {"tag": {"$in": ["a", "b"]}}            also $nin, $ne
    {"$or": [{...}, {...}]}, {"$and": [...]}
    {}                                      matches everything

Values are strings, numbers or booleans. Comparisons only match values of the same kind
(a number never equals or exceeds a string; booleans are not numbers and only support
equality). Strings compare by code point. Numbers compare exactly, except that integers outside
the signed 64-bit range are taken as the nearest double (that is how they are stored); a NaN
in a filter never equals anything. `$ne`/`$nin` also match rows where the field is missing, as
in MongoDB. Lists, objects and nulls in metadata are stored and returned but cannot be filtered
on (no operator matches them, so `$ne`/`$nin` do).

Limits (a filter past one is refused with `FilterLimitError`, HTTP 413, before any work):

* `MAX_FILTER_DEPTH` = 32 levels of nested filter objects (the top-level object is level 1,
  each `$and`/`$or` list adds one).
* `MAX_FILTER_CONDITIONS` = 1,000 conditions in all: each operator on a field (`{"year":
  {"$gte": 1, "$lt": 2}}` is two), each `$in`/`$nin`, and each empty `{}` inside `$and`/`$or`
  counts one; so one `$or` has at most 1,000 branches.
* `MAX_FILTER_VALUES` = 10,000 values in all (one per comparison plus every element of every
  `$in`/`$nin` list); `MAX_IN_VALUES` = 10,000 values in one `$in`/`$nin` list.

They are generous for hand-written and generated filters alike (real ones rarely nest past 5
levels or reach 100 conditions), and each backend must evaluate every filter within them;
sqlite_filters.py says how SQLite's own, smaller, limits (500 terms in a compound SELECT, a
parser stack that overflowed at 7 levels) are kept clear of. Measured with SQLite 3.40 on 20,000
rows: the worst 32-level filter (`$ne`/`$nin` inside every `$or` level, each a scan of all rows)
takes about 0.4 s; 1,000 conditions at most about 0.15 s, while 5,000 took over 1 s and cost grows
faster than linearly (10,000 `$ne` branches: 11 s on 200 rows); a 10,000-value `$in` takes
about 40 ms, and 10,000 values keep the bound parameters well under SQLite's default cap of
32,766.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from embedstack.errors import FilterError, FilterLimitError
from embedstack.rows import check_text

MAX_FILTER_DEPTH = 32
MAX_FILTER_CONDITIONS = 1_000
MAX_FILTER_VALUES = 10_000
MAX_IN_VALUES = 10_000

COMPARISONS = {"$eq": "eq", "$ne": "ne", "$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
MEMBERSHIP = {"$in", "$nin"}
LOGICAL = {"$and", "$or"}
OPERATORS = sorted(set(COMPARISONS) | MEMBERSHIP | LOGICAL)

INT64 = (-(2**63), 2**63 - 1)


def value_kind(value: Any) -> str | None:
    """The comparison class of a value: 'bool', 'number', 'text', or None (not filterable)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return None


def comparable(value: Any) -> Any:
    """A filterable value as backends compare it: integers beyond int64 become the nearest double
    (±inf past the double range); everything else is unchanged."""
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


# ---- the tree --------------------------------------------------------------------------------


class FilterNode:
    """A parsed filter. Nodes are immutable; two nodes are equal when their `key`s are."""

    def to_spec(self) -> dict[str, Any]:
        """The filter as a JSON-able spec; `parse_filter(node.to_spec()) == node`."""
        raise NotImplementedError

    @cached_property
    def key(self) -> str:
        """Canonical JSON of `to_spec()`: a stable key to memoise compiled filters on."""
        return json.dumps(self.to_spec(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def __eq__(self, other: object) -> bool:
        # Not the dataclass tuple comparison: that would find In(f, (1,)) == In(f, (True,)).
        return isinstance(other, FilterNode) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


@dataclass(frozen=True, eq=False)
class And(FilterNode):
    """All children match; `And(())` matches everything (the filter `{}`)."""

    children: tuple[FilterNode, ...]

    def to_spec(self) -> dict[str, Any]:
        return {"$and": [child.to_spec() for child in self.children]} if self.children else {}


@dataclass(frozen=True, eq=False)
class Or(FilterNode):
    """At least one child matches."""

    children: tuple[FilterNode, ...]

    def __post_init__(self) -> None:
        if not self.children:
            raise FilterError("$or needs a non-empty list of filters, got []")

    def to_spec(self) -> dict[str, Any]:
        return {"$or": [child.to_spec() for child in self.children]}


@dataclass(frozen=True, eq=False)
class Compare(FilterNode):
    """`field op value`, op one of eq, ne, gt, gte, lt, lte; kind is `value_kind(value)`."""

    field: str
    op: str
    value: Any
    kind: str

    def __post_init__(self) -> None:
        if self.op not in COMPARISONS.values():
            raise FilterError(f"unknown comparison {self.op!r} on field {self.field!r}")
        if self.kind != value_kind(self.value):
            raise FilterError(f"kind {self.kind!r} does not fit {self.value!r}")
        if self.kind == "bool" and self.op not in ("eq", "ne"):
            raise FilterError(f"booleans only support equality, got {self.value!r}")

    @property
    def negated(self) -> bool:
        return self.op == "ne"

    def to_spec(self) -> dict[str, Any]:
        return {self.field: {f"${self.op}": self.value}}


@dataclass(frozen=True, eq=False)
class In(FilterNode):
    """`field` equals one of `values` (`$in`), or, with `negate`, none of them (`$nin`)."""

    field: str
    values: tuple[Any, ...]
    negate: bool = False

    def __post_init__(self) -> None:
        if not self.values:
            op = "$nin" if self.negate else "$in"
            raise FilterError(f"{op} on {self.field!r} needs a non-empty list, got []")
        for value in self.values:
            if value_kind(value) is None:
                raise FilterError(f"kind of {value!r} cannot be filtered on")

    @property
    def negated(self) -> bool:
        return self.negate

    @cached_property
    def by_kind(self) -> dict[str, list[Any]]:
        """The values grouped by kind, in order of first appearance."""
        groups: dict[str, list[Any]] = {}
        for value in self.values:
            groups.setdefault(value_kind(value) or "", []).append(value)
        return groups

    @cached_property
    def _lookup(self) -> dict[str, frozenset]:
        return {kind: frozenset(map(comparable, group)) for kind, group in self.by_kind.items()}

    def to_spec(self) -> dict[str, Any]:
        return {self.field: {"$nin" if self.negate else "$in": list(self.values)}}


MATCH_ALL = And(())


def _and(parts: Iterable[FilterNode]) -> FilterNode:
    children: list[FilterNode] = []
    for part in parts:
        children.extend(part.children if isinstance(part, And) else (part,))
    return children[0] if len(children) == 1 else And(tuple(children))


def _or(parts: Iterable[FilterNode]) -> FilterNode:
    children: list[FilterNode] = []
    for part in parts:
        children.extend(part.children if isinstance(part, Or) else (part,))
    return children[0] if len(children) == 1 else Or(tuple(children))


# ---- evaluation in Python (the reference) ----------------------------------------------------


_MISSING = object()


def _equal(stored: Any, kind: str | None, node: Compare) -> bool:
    return kind == node.kind and comparable(stored) == comparable(node.value)


def _compare(stored: Any, node: Compare) -> bool:
    kind = value_kind(stored)
    if node.op in ("eq", "ne"):
        return _equal(stored, kind, node) != (node.op == "ne")
    if kind != node.kind:
        return False
    left, right = comparable(stored), comparable(node.value)
    if node.op == "gt":
        return bool(left > right)
    if node.op == "gte":
        return bool(left >= right)
    if node.op == "lt":
        return bool(left < right)
    return bool(left <= right)


def _member(stored: Any, node: In) -> bool:
    kind = value_kind(stored)
    group = node._lookup.get(kind or "")
    value = comparable(stored)
    found = group is not None and value == value and value in group  # value == value: not NaN
    return found != node.negate


def matches(node: FilterNode | None, metadata: Mapping[str, Any]) -> bool:
    """Whether one chunk's metadata passes the filter (None: no filter, always True)."""
    if node is None:
        return True
    if isinstance(node, And):
        return all(matches(child, metadata) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, metadata) for child in node.children)
    if isinstance(node, Compare):
        return _compare(metadata.get(node.field, _MISSING), node)
    if isinstance(node, In):
        return _member(metadata.get(node.field, _MISSING), node)
    raise TypeError(f"not a filter node: {node!r}")


# ---- parsing ---------------------------------------------------------------------------------


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


class _TooBig(Exception):
    """Raised inside the parser when a limit is passed; turned into FilterLimitError."""


def _measure(spec: Any) -> tuple[int, int, int]:
    """(depth, conditions, values) of a filter spec, counted as the limits count them; malformed
    parts are skipped. Iterative, so it is safe on specs far deeper than the limit."""
    depth = conditions = values = 0
    stack: list[tuple[Any, int]] = [(spec, 1)]
    seen: set[int] = set()
    while stack:
        item, level = stack.pop()
        if not isinstance(item, Mapping) or id(item) in seen:
            continue
        seen.add(id(item))
        depth = max(depth, level)
        if not item and level > 1:
            conditions += 1
        for key, value in item.items():
            if key in LOGICAL:
                if isinstance(value, list):
                    stack.extend((sub, level + 1) for sub in value)
            elif not isinstance(value, Mapping):
                conditions, values = conditions + 1, values + 1
            else:
                for op, operand in value.items():
                    conditions += 1
                    values += len(operand) if op in MEMBERSHIP and isinstance(operand, list) else 1
    return depth, conditions, values


class _Parser:
    def __init__(self) -> None:
        self.conditions = 0
        self.values = 0

    def _count(self, conditions: int, values: int) -> None:
        self.conditions += conditions
        self.values += values
        if self.conditions > MAX_FILTER_CONDITIONS or self.values > MAX_FILTER_VALUES:
            raise _TooBig

    def _value(self, field: str, value: Any) -> str:
        kind = value_kind(value)
        if kind is None:
            raise FilterError(
                f"filter values must be strings, numbers or booleans, got {type(value).__name__}: "
                f"{_short(value)} (field {field!r})"
            )
        if kind == "text":
            check_text(value, f"a value of field {field!r}", FilterError)
        return kind

    def _compare(self, field: str, op: str, value: Any) -> Compare:
        kind = self._value(field, value)
        if kind == "bool" and op not in ("eq", "ne"):
            raise FilterError(f"booleans only support equality, got {value!r} (field {field!r})")
        self._count(1, 1)
        return Compare(field, op, value, kind)

    def _member(self, field: str, op: str, values: Any) -> In:
        if not isinstance(values, list) or not values:
            raise FilterError(f"{op} on {field!r} needs a non-empty list, got {_short(values)}")
        if len(values) > MAX_IN_VALUES:
            raise FilterLimitError(
                f"{op} on {field!r} has {len(values):,} values; the limit is {MAX_IN_VALUES:,}"
            )
        for value in values:
            self._value(field, value)
        self._count(1, len(values))
        return In(field, tuple(values), negate=op == "$nin")

    def field(self, field: Any, condition: Any) -> list[FilterNode]:
        if isinstance(field, str) and field.startswith("$"):
            raise FilterError(f"unknown operator {field!r}; supported: {', '.join(OPERATORS)}")
        if not isinstance(field, str) or not field:
            raise FilterError(f"filter field names must be non-empty strings, got {field!r}")
        check_text(field, "a field name", FilterError)
        if not isinstance(condition, Mapping):
            return [self._compare(field, "eq", condition)]
        if not condition:
            raise FilterError(f"empty condition for field {field!r}")
        nodes: list[FilterNode] = []
        for op, value in condition.items():
            if op in COMPARISONS:
                if isinstance(value, list | dict):
                    raise FilterError(
                        f"{op} on {field!r} needs a single value, got {_short(value)}"
                    )
                nodes.append(self._compare(field, COMPARISONS[op], value))
            elif op in MEMBERSHIP:
                nodes.append(self._member(field, op, value))
            else:
                raise FilterError(
                    f"unknown operator {op!r} on field {field!r}; supported: {', '.join(OPERATORS)}"
                )
        return nodes

    def filter(self, spec: Any, depth: int) -> FilterNode:
        if depth > MAX_FILTER_DEPTH:
            raise _TooBig
        if not isinstance(spec, Mapping):
            raise FilterError(f"a filter must be a JSON object, got {type(spec).__name__}")
        if not spec:
            if depth > 1:
                self._count(1, 0)
            return MATCH_ALL
        parts: list[FilterNode] = []
        for key, value in spec.items():
            if key in LOGICAL:
                if not isinstance(value, list) or not value:
                    raise FilterError(
                        f"{key} needs a non-empty list of filters, got {_short(value)}"
                    )
                children = [self.filter(sub, depth + 1) for sub in value]
                parts.append(_and(children) if key == "$and" else _or(children))
            else:
                parts.extend(self.field(key, value))
        return _and(parts)


def parse_filter(spec: Mapping[str, Any] | None) -> FilterNode | None:
    """Validate a whole filter spec and return its tree (None for no filter).

    Raises FilterError (one line naming the field or operator) for a malformed filter and
    FilterLimitError for one past a documented limit."""
    if spec is None:
        return None
    try:
        return _Parser().filter(spec, 1)
    except _TooBig:
        depth, conditions, values = _measure(spec)
        if depth > MAX_FILTER_DEPTH:
            raise FilterLimitError(
                f"filter nests {depth} levels deep; the limit is {MAX_FILTER_DEPTH}"
            ) from None
        if conditions > MAX_FILTER_CONDITIONS:
            raise FilterLimitError(
                f"filter has {conditions:,} conditions; the limit is {MAX_FILTER_CONDITIONS:,}"
            ) from None
        raise FilterLimitError(
            f"filter has {max(values, MAX_FILTER_VALUES + 1):,} values; "
            f"the limit is {MAX_FILTER_VALUES:,}"
        ) from None
