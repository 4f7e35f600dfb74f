"""Filter trees (see filters.py) compiled to one PostgreSQL boolean expression.

The expression reads a `jsonb` column of *filterable* values, `fields`, kept next to the
metadata as it was given: one entry per string, boolean or number of the metadata (lists,
objects and nulls are left out, so no operator matches them and `$ne`/`$nin` do). Numbers are
written there as the exact decimal value of `filters.comparable(value)`: integers as they are
(the signed 64-bit range), larger integers as the nearest double, doubles by their exact binary
value. PostgreSQL's `numeric` then compares exactly what Python compares — `2**63` as a float
equals `-(2**63)`'s negation, `2**70 + 1` equals `2**70` — which comparing the JSON text of the
metadata itself would not (jsonb keeps `0.1` as the decimal 0.1, not the double).

* `$eq`/`$ne` are jsonb containment (`fields @> '{"f": v}'`), answered by the GIN index on
  `fields`; containment is type-strict (`"1"` never contains `1`) and compares numbers by value.
* `$in`/`$nin` are `fields -> 'f' = ANY(values)` (jsonb equality, also type-strict).
* Ranges are `CASE WHEN jsonb_typeof(...) = 'number' THEN (...)::numeric > v ELSE false END`:
  the CASE keeps a string from ever being cast to numeric, and gives false, never NULL, for a
  missing field — so `NOT` (for `$ne`/`$nin`) is true there, as in MongoDB.
* Strings order by code point: `COLLATE "C"` compares UTF-8 bytes, which is code point order.
* A NaN in a filter equals nothing and bounds nothing; infinities are written as ±1e400,
  beyond every double.

Every filter within filters.py's limits compiles to one expression of at most 10,000 bound
values (psycopg's cap is 65,535) nested at most 32 levels (PostgreSQL's parser takes far more).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from psycopg import sql

from embedstack.store.filters import And, Compare, FilterNode, In, Or, comparable, value_kind

INFINITY = "1e400"  # beyond every double (the largest is about 1.8e308)
_SQL_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def exact_number(value: int | float) -> str | None:
    """A number as the JSON text of its exact comparable value (None for NaN)."""
    value = comparable(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return INFINITY if value > 0 else "-" + INFINITY
    return str(Decimal(value))  # exact: every double is a finite decimal


def json_scalar(value: Any) -> str | None:
    """A filterable value as JSON text for the `fields` column (None: not filterable)."""
    kind = value_kind(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "text":
        return json.dumps(value, ensure_ascii=False)
    if kind == "number":
        return exact_number(value)
    return None


def fields_json(metadata: Mapping[str, Any]) -> str:
    """The `fields` column of one row: its filterable metadata values, exactly comparable."""
    parts = []
    for key, value in metadata.items():
        encoded = json_scalar(value)
        if encoded is not None:
            parts.append(f"{json.dumps(key, ensure_ascii=False)}:{encoded}")
    return "{" + ",".join(parts) + "}"


class _Compiler:
    def __init__(self, column: sql.Composable) -> None:
        self.column = column
        self.params: list[Any] = []

    def _param(self, value: Any, cast: str = "") -> sql.Composable:
        self.params.append(value)
        return sql.SQL("%s" + cast)

    def _field(self, name: str, operator: str = "->") -> sql.Composable:
        return sql.SQL("({} " + operator + " {})").format(self.column, self._param(name, "::text"))

    def _equal(self, field: str, encoded: str | None) -> sql.Composable:
        """`field` holds the value whose JSON text is `encoded` (None, a NaN: never)."""
        if encoded is None:
            return sql.SQL("false")
        document = f"{{{json.dumps(field, ensure_ascii=False)}:{encoded}}}"
        return sql.SQL("({} @> {})").format(self.column, self._param(document, "::jsonb"))

    def _range(self, node: Compare) -> sql.Composable:
        op = sql.SQL(_SQL_OPS[node.op])
        if node.kind == "text":
            return sql.SQL(
                "(CASE WHEN jsonb_typeof({f}) = 'string' "
                'THEN {g} COLLATE "C" {op} {v} ELSE false END)'
            ).format(
                f=self._field(node.field),
                g=self._field(node.field, "->>"),
                op=op,
                v=self._param(node.value, "::text"),
            )
        bound = exact_number(node.value)
        if bound is None:  # NaN bounds nothing
            return sql.SQL("false")
        return sql.SQL(
            "(CASE WHEN jsonb_typeof({f}) = 'number' THEN ({g})::numeric {op} {v} ELSE false END)"
        ).format(
            f=self._field(node.field),
            g=self._field(node.field),
            op=op,
            v=self._param(bound, "::numeric"),
        )

    def _member(self, node: In) -> sql.Composable:
        values = [v for v in map(json_scalar, node.values) if v is not None]
        if not values:  # only NaNs: nothing is among them
            found: sql.Composable = sql.SQL("false")
        elif len(values) == 1:
            found = self._equal(node.field, values[0])
        else:
            found = sql.SQL("coalesce({} = ANY({}), false)").format(
                self._field(node.field), self._param(values, "::jsonb[]")
            )
        return sql.SQL("(NOT {})").format(found) if node.negate else found

    def node(self, node: FilterNode) -> sql.Composable:
        if isinstance(node, And):
            if not node.children:
                return sql.SQL("true")
            return sql.SQL("({})").format(sql.SQL(" AND ").join(map(self.node, node.children)))
        if isinstance(node, Or):
            return sql.SQL("({})").format(sql.SQL(" OR ").join(map(self.node, node.children)))
        if isinstance(node, In):
            return self._member(node)
        if isinstance(node, Compare):
            if node.op in ("eq", "ne"):
                equal = self._equal(node.field, json_scalar(node.value))
                return sql.SQL("(NOT {})").format(equal) if node.op == "ne" else equal
            return self._range(node)
        raise TypeError(f"not a filter node: {node!r}")


def compile_postgres(
    node: FilterNode | None, column: str = "fields"
) -> tuple[sql.Composable, list[Any]]:
    """(condition, params): a boolean SQL expression over `column` that is true exactly for
    the rows `filters.matches(node, metadata)` accepts (`true` when node is None)."""
    if node is None:
        return sql.SQL("true"), []
    compiler = _Compiler(sql.Identifier(column))
    condition = compiler.node(node)
    return condition, compiler.params
