"""Metadata filters (a MongoDB-like subset) compiled to a SQLite WHERE clause.

Written here rather than taken from a library because the filter must run inside the same
SQLite query that selects candidate vectors; that is what lets a filtered search return k hits.

Grammar::

    {"lang": "en"}                          equality (shorthand for {"$eq": "en"})
    {"year": {"$gte": 2020, "$lt": 2024}}   several operators on one field are ANDed
    {"tag": {"$in": ["a", "b"]}}            also $nin, $ne
    {"$or": [{...}, {...}]}, {"$and": [...]}

Values are strings, numbers or booleans. Comparisons only match values of the same kind
(a number never equals or exceeds a string; booleans are not numbers). `$ne`/`$nin` also match
rows where the field is missing, as in MongoDB.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from embedstack.errors import FilterError

COMPARISONS = {"$eq": "=", "$ne": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
MEMBERSHIP = {"$in", "$nin"}
LOGICAL = {"$and", "$or"}
OPERATORS = sorted(set(COMPARISONS) | MEMBERSHIP | LOGICAL)

Scalar = str | int | float | bool


def _kind(value: Any) -> str:
    """The comparison class of a filter value: 'bool', 'number' or 'text'."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    raise FilterError(
        f"filter values must be strings, numbers or booleans, got {type(value).__name__}: {value!r}"
    )


class _Compiler:
    def __init__(self, column: str) -> None:
        self.column = column
        self.params: list[Any] = []

    def _path(self, field: str) -> str:
        if not isinstance(field, str) or not field:
            raise FilterError(f"filter field names must be non-empty strings, got {field!r}")
        if '"' in field:
            raise FilterError(f"filter field names cannot contain '\"': {field!r}")
        return f'$."{field}"'

    def _typed(self, field: str, value: Scalar, op: str) -> str:
        """A predicate that is never NULL: true only when the stored value has the same kind."""
        path = self._path(field)
        kind = _kind(value)
        type_expr = f"IFNULL(json_type({self.column}, ?), '')"
        if kind == "bool":
            if op != "=":
                raise FilterError(f"booleans only support equality, got {value!r}")
            self.params.append(path)
            return f"({type_expr} = '{'true' if value else 'false'}')"
        types = "('integer', 'real')" if kind == "number" else "('text')"
        self.params.extend([path, path, value])
        return f"({type_expr} IN {types} AND json_extract({self.column}, ?) {op} ?)"

    def field(self, field: str, condition: Any) -> str:
        if field.startswith("$"):
            raise FilterError(f"unknown operator {field!r}; supported: {', '.join(OPERATORS)}")
        if not isinstance(condition, Mapping):
            return self._typed(field, condition, "=")
        if not condition:
            raise FilterError(f"empty condition for field {field!r}")
        parts = []
        for op, value in condition.items():
            if op in COMPARISONS:
                if isinstance(value, list | dict):
                    raise FilterError(f"{op} on {field!r} needs a single value, got {value!r}")
                clause = self._typed(field, value, COMPARISONS[op])
                parts.append(f"NOT {clause}" if op == "$ne" else clause)
            elif op in MEMBERSHIP:
                if not isinstance(value, list) or not value:
                    raise FilterError(f"{op} on {field!r} needs a non-empty list, got {value!r}")
                clause = "(" + " OR ".join(self._typed(field, v, "=") for v in value) + ")"
                parts.append(f"NOT {clause}" if op == "$nin" else clause)
            else:
                raise FilterError(
                    f"unknown operator {op!r} on field {field!r}; supported: {', '.join(OPERATORS)}"
                )
        return "(" + " AND ".join(parts) + ")"

    def filter(self, spec: Any) -> str:
        if not isinstance(spec, Mapping):
            raise FilterError(f"a filter must be a JSON object, got {type(spec).__name__}")
        if not spec:
            return "1"
        parts = []
        for key, value in spec.items():
            if key in LOGICAL:
                if not isinstance(value, list) or not value:
                    raise FilterError(f"{key} needs a non-empty list of filters, got {value!r}")
                joiner = " AND " if key == "$and" else " OR "
                parts.append("(" + joiner.join(self.filter(sub) for sub in value) + ")")
            else:
                parts.append(self.field(key, value))
        return "(" + " AND ".join(parts) + ")"


def compile_filter(spec: Mapping[str, Any] | None, column: str = "metadata") -> tuple[str, list]:
    """Return (sql, params) for a WHERE clause over a JSON `column`; an empty filter matches all."""
    if spec is None:
        return "1", []
    compiler = _Compiler(column)
    sql = compiler.filter(spec)
    return sql, compiler.params
