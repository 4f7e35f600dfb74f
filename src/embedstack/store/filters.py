"""Metadata filters (a MongoDB-like subset) compiled to SQL over an indexed key/value table.

Written here rather than taken from a library because the filter must run inside the same
SQLite database that selects candidate vectors; that is what lets a filtered search return k
hits. Each scalar metadata value is also stored as a row of `chunk_meta(vid, key, kind, value)`,
indexed on (key, kind, value), so a selective filter is an index range scan, not a table scan.

Grammar::

    {"lang": "en"}                          equality (shorthand for {"$eq": "en"})
    {"year": {"$gte": 2020, "$lt": 2024}}   several operators on one field are ANDed
    {"tag": {"$in": ["a", "b"]}}            also $nin, $ne
    {"$or": [{...}, {...}]}, {"$and": [...]}

Values are strings, numbers or booleans. Comparisons only match values of the same kind
(a number never equals or exceeds a string; booleans are not numbers). `$ne`/`$nin` also match
rows where the field is missing, as in MongoDB. Lists, objects and nulls in metadata are stored
and returned but cannot be filtered on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from embedstack.errors import FilterError

COMPARISONS = {"$eq": "=", "$ne": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
MEMBERSHIP = {"$in", "$nin"}
LOGICAL = {"$and", "$or"}
OPERATORS = sorted(set(COMPARISONS) | MEMBERSHIP | LOGICAL)
ALL_ROWS = "SELECT vid FROM chunks"

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


def sql_value(value: Any) -> Any:
    """How a filterable value is stored: booleans as 0/1, huge integers as floats."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        return float(value)
    return value


def index_rows(vid: int, metadata: Mapping[str, Any]) -> Iterator[tuple[int, str, str, Any]]:
    """The `chunk_meta` rows for one chunk's metadata."""
    for key, value in metadata.items():
        kind = value_kind(value)
        if kind is not None:
            yield vid, key, kind, sql_value(value)


def _filter_kind(value: Any) -> str:
    kind = value_kind(value)
    if kind is None:
        raise FilterError(
            f"filter values must be strings, numbers or booleans, got {type(value).__name__}: "
            f"{value!r}"
        )
    return kind


def _combine(selects: list[str], operator: str) -> str:
    return f" {operator} ".join(f"SELECT vid FROM ({select})" for select in selects)


def _negate(select: str) -> str:
    return f"{ALL_ROWS} EXCEPT SELECT vid FROM ({select})"


class _Compiler:
    """Builds one SELECT of matching vids; params are appended in the order they appear."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def _field_name(self, field: Any) -> str:
        if not isinstance(field, str) or not field:
            raise FilterError(f"filter field names must be non-empty strings, got {field!r}")
        return field

    def _compare(self, field: str, op: str, value: Any) -> str:
        kind = _filter_kind(value)
        if kind == "bool" and op != "=":
            raise FilterError(f"booleans only support equality, got {value!r}")
        self.params.extend([field, kind, sql_value(value)])
        return f"SELECT vid FROM chunk_meta WHERE key = ? AND kind = ? AND value {op} ?"

    def _member(self, field: str, values: list) -> str:
        by_kind: dict[str, list] = {}
        for value in values:
            by_kind.setdefault(_filter_kind(value), []).append(sql_value(value))
        selects = []
        for kind, group in by_kind.items():
            self.params.extend([field, kind, *group])
            marks = ", ".join("?" * len(group))
            selects.append(
                f"SELECT vid FROM chunk_meta WHERE key = ? AND kind = ? AND value IN ({marks})"
            )
        return _combine(selects, "UNION")

    def field(self, field: str, condition: Any) -> str:
        if isinstance(field, str) and field.startswith("$"):
            raise FilterError(f"unknown operator {field!r}; supported: {', '.join(OPERATORS)}")
        field = self._field_name(field)
        if not isinstance(condition, Mapping):
            return self._compare(field, "=", condition)
        if not condition:
            raise FilterError(f"empty condition for field {field!r}")
        selects = []
        for op, value in condition.items():
            if op in COMPARISONS:
                if isinstance(value, list | dict):
                    raise FilterError(f"{op} on {field!r} needs a single value, got {value!r}")
                select = self._compare(field, COMPARISONS[op], value)
                selects.append(_negate(select) if op == "$ne" else select)
            elif op in MEMBERSHIP:
                if not isinstance(value, list) or not value:
                    raise FilterError(f"{op} on {field!r} needs a non-empty list, got {value!r}")
                select = self._member(field, value)
                selects.append(_negate(select) if op == "$nin" else select)
            else:
                raise FilterError(
                    f"unknown operator {op!r} on field {field!r}; supported: {', '.join(OPERATORS)}"
                )
        return _combine(selects, "INTERSECT")

    def filter(self, spec: Any) -> str:
        if not isinstance(spec, Mapping):
            raise FilterError(f"a filter must be a JSON object, got {type(spec).__name__}")
        if not spec:
            return ALL_ROWS
        selects = []
        for key, value in spec.items():
            if key in LOGICAL:
                if not isinstance(value, list) or not value:
                    raise FilterError(f"{key} needs a non-empty list of filters, got {value!r}")
                parts = [self.filter(sub) for sub in value]
                selects.append(_combine(parts, "INTERSECT" if key == "$and" else "UNION"))
            else:
                selects.append(self.field(key, value))
        return _combine(selects, "INTERSECT")


def compile_filter(spec: Mapping[str, Any] | None) -> tuple[str, list]:
    """Return (select, params): a SELECT of the vids matching `spec` (all rows when None)."""
    if spec is None:
        return ALL_ROWS, []
    compiler = _Compiler()
    select = compiler.filter(spec)
    return select, compiler.params
