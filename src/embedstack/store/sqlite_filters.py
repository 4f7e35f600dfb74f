"""Filter trees (see filters.py) compiled to one SQLite SELECT of the matching vids.

The filter runs inside the same SQLite database that selects candidate vectors; that is what
lets a filtered search return k hits. Each scalar metadata value is also stored as a row of
`chunk_meta(vid, key, kind, value)`, indexed on (key, kind, value), so every condition is an
index range scan (`key = ? AND kind = ? AND value >= ?`), not a table scan, and the tree becomes
set operations on those scans: `$and` is INTERSECT, `$or` UNION, `$ne`/`$nin` EXCEPT (from the
other conditions of their `$and`, or from all rows).

Four rewrites keep plain filters cheap and let every filter within filters.py's limits run
(without them a filter 7 levels deep, or with 501 `$or` branches, failed with a raw
`sqlite3.OperationalError`):

* Range conditions on one field in one `$and` share a scan (`value >= ? AND value < ?`, at
  most `RANGE_TERMS` in one: SQLite caps expression depth at 1,000), and `$eq`/`$in` branches
  of an `$or` on one field become a single `value IN (...)`.
* A compound SELECT has at most `COMPOUND_TERMS` terms; more are grouped into sub-selects.
  SQLite refuses more than 500 (SQLITE_MAX_COMPOUND_SELECT), and it compiles a compound by
  recursion, one C stack frame per term: with 16, the worst filter within the limits (32
  levels of `$and` with 30 `$ne` each) needs under 192 KiB of C stack (with 32: over 384 KiB).
* Sub-selects are nested at most `SQL_NESTING` deep; a deeper part is hoisted into a common
  table expression (`WITH filter1(vid) AS (...)`) and referred to by name. SQLite's parser
  stack overflows at 14 nested `SELECT vid FROM (... INTERSECT ...)` (SQL_NESTING 10 still
  works inside `SELECT COUNT(*) FROM (...)`, 12 does not); a chain of 5,000 CTEs is fine.
* `$ne`/`$nin` in an `$and` with other conditions subtract from those (`A EXCEPT B`) instead
  of from all rows.

A filter within the limits binds at most about 16,000 parameters (SQLite's default cap is
32,766) and a few hundred KB of SQL (default cap 1,000,000 bytes). A normal filter needs no
CTE and no grouping, and compiles to the same index scans joined by INTERSECT/UNION/EXCEPT as
before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from embedstack.store.filters import (
    And,
    Compare,
    FilterNode,
    In,
    Or,
    comparable,
    parse_filter,
    value_kind,
)

ALL_ROWS = "SELECT vid FROM chunks"
COMPOUND_TERMS = 16  # per compound SELECT (SQLite's cap is 500; see _compound)
SQL_NESTING = 6  # nested sub-selects before hoisting into a CTE; SQLite overflows near 14
RANGE_TERMS = 4  # comparisons ANDed in one scan (SQLite caps expression depth at 1,000)
_SQL_OPS = {"eq": "=", "ne": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def sql_value(value: Any) -> Any:
    """How a filterable value is stored: booleans as 0/1, integers beyond int64 as doubles."""
    if isinstance(value, bool):
        return int(value)
    return comparable(value)


def index_rows(vid: int, metadata: Mapping[str, Any]) -> Iterator[tuple[int, str, str, Any]]:
    """The `chunk_meta` rows for one chunk's metadata."""
    for key, value in metadata.items():
        kind = value_kind(value)
        if kind is not None:
            yield vid, key, kind, sql_value(value)


@dataclass
class _Select:
    sql: str
    params: list[Any]
    compound: bool  # needs `SELECT vid FROM (...)` around it to be a term of another compound
    nesting: int  # depth of parenthesised sub-selects inside


def _eq_or_in(node: FilterNode) -> TypeGuard[Compare | In]:
    """An `$eq` or `$in`: the `$or` branches of these on one field become one IN."""
    if isinstance(node, Compare):
        return node.op == "eq"
    return isinstance(node, In) and not node.negate


class _Compiler:
    """Builds one SELECT; params are kept in the order their `?` appear in the text."""

    def __init__(self) -> None:
        self.ctes: list[str] = []
        self.cte_params: list[Any] = []

    # -- building blocks -----------------------------------------------------------------------

    def _scan(self, field: str, kind: str, condition: str, values: list[Any]) -> _Select:
        return _Select(
            f"SELECT vid FROM chunk_meta WHERE key = ? AND kind = ? AND {condition}",
            [field, kind, *values],
            compound=False,
            nesting=0,
        )

    def _term(self, select: _Select) -> _Select:
        """`select` as something that can stand between INTERSECT/UNION/EXCEPT."""
        if not select.compound:
            return select
        if select.nesting + 1 > SQL_NESTING:
            name = f"filter{len(self.ctes) + 1}"
            self.ctes.append(f"{name}(vid) AS ({select.sql})")
            self.cte_params.extend(select.params)
            return _Select(f"SELECT vid FROM {name}", [], compound=False, nesting=0)
        return _Select(f"SELECT vid FROM ({select.sql})", select.params, False, select.nesting + 1)

    def _join(self, terms: list[tuple[str, _Select]]) -> _Select:
        """Terms chained left to right, as SQLite evaluates a compound (the first op is unused)."""
        terms = [(op, self._term(select)) for op, select in terms]
        if len(terms) == 1:
            return terms[0][1]
        sql = terms[0][1].sql + "".join(f" {op} {term.sql}" for op, term in terms[1:])
        params = [param for _, term in terms for param in term.params]
        return _Select(sql, params, compound=True, nesting=max(t.nesting for _, t in terms))

    def _compound(self, op: str, selects: list[_Select]) -> _Select:
        """Selects joined by one associative operator (UNION or INTERSECT). Past COMPOUND_TERMS
        they are grouped into sub-selects: SQLite caps a compound's terms, and it compiles a
        chain by recursion, one C stack frame per term."""
        while len(selects) > COMPOUND_TERMS:
            groups = -(-len(selects) // COMPOUND_TERMS)
            size = -(-len(selects) // groups)
            selects = [
                self._join([(op, select) for select in selects[start : start + size]])
                for start in range(0, len(selects), size)
            ]
        return self._join([(op, select) for select in selects])

    def _all_except(self, select: _Select) -> _Select:
        return self._join([("", self._all()), ("EXCEPT", select)])

    def _all(self) -> _Select:
        return _Select(ALL_ROWS, [], compound=False, nesting=0)

    # -- conditions ----------------------------------------------------------------------------

    def _range(self, field: str, kind: str, compares: list[Compare]) -> _Select:
        conditions = " AND ".join(f"value {_SQL_OPS[c.op]} ?" for c in compares)
        return self._scan(field, kind, conditions, [sql_value(c.value) for c in compares])

    def _member(self, field: str, values: list[Any]) -> _Select:
        by_kind: dict[str, list[Any]] = {}
        for value in values:
            by_kind.setdefault(value_kind(value) or "", []).append(sql_value(value))
        scans = []
        for kind, group in by_kind.items():
            condition = (
                "value = ?" if len(group) == 1 else f"value IN ({', '.join('?' * len(group))})"
            )
            scans.append(self._scan(field, kind, condition, group))
        return self._compound("UNION", scans)

    def _excluded(self, node: Compare | In) -> _Select:
        """The rows a `$ne`/`$nin` leaves out (and the rows a `$eq`/`$in` keeps)."""
        if isinstance(node, Compare):
            return self._range(node.field, node.kind, [node])
        return self._member(node.field, list(node.values))

    def _and(self, children: tuple[FilterNode, ...]) -> _Select:
        kept: list[_Select] = []
        excluded: list[_Select] = []
        ranges: dict[tuple[str, str], list[Compare]] = {}
        for child in children:
            if isinstance(child, Compare | In) and child.negated:
                excluded.append(self._excluded(child))
            elif isinstance(child, Compare):
                ranges.setdefault((child.field, child.kind), []).append(child)
            else:
                kept.append(self.node(child))
        kept[:0] = [
            self._range(field, kind, group[start : start + RANGE_TERMS])
            for (field, kind), group in ranges.items()
            for start in range(0, len(group), RANGE_TERMS)
        ]
        if not kept:
            kept.append(self._all())
        if not excluded:
            return self._compound("INTERSECT", kept)
        if len(kept) + len(excluded) <= COMPOUND_TERMS:  # a plain chain: A INTERSECT B EXCEPT C
            terms = [("INTERSECT", select) for select in kept]
            return self._join(terms + [("EXCEPT", select) for select in excluded])
        return self._join(
            [
                ("", self._compound("INTERSECT", kept)),
                ("EXCEPT", self._compound("UNION", excluded)),
            ]
        )

    def _or(self, children: tuple[FilterNode, ...]) -> _Select:
        values: dict[str, list[Any]] = {}  # field -> values of its $eq and $in branches
        first: dict[str, Compare | In] = {}  # field -> its first such branch
        parts: list[str | FilterNode] = []
        for child in children:
            if _eq_or_in(child):
                if child.field not in values:
                    values[child.field] = []
                    first[child.field] = child
                    parts.append(child.field)
                values[child.field].extend(child.values if isinstance(child, In) else [child.value])
            else:
                parts.append(child)
        selects = []
        for part in parts:
            if not isinstance(part, str):
                selects.append(self.node(part))
            elif isinstance(first[part], Compare) and len(values[part]) == 1:
                selects.append(self._excluded(first[part]))  # a lone $eq: as it is
            else:
                selects.append(self._member(part, values[part]))
        return self._compound("UNION", selects)

    def node(self, node: FilterNode) -> _Select:
        if isinstance(node, And):
            return self._and(node.children) if node.children else self._all()
        if isinstance(node, Or):
            return self._or(node.children)
        if isinstance(node, Compare | In):
            select = self._excluded(node)
            return self._all_except(select) if node.negated else select
        raise TypeError(f"not a filter node: {node!r}")


def compile_sqlite(node: FilterNode | None) -> tuple[str, list[Any]]:
    """Return (select, params): a SELECT of the vids matching `node` (all rows when None)."""
    if node is None:
        return ALL_ROWS, []
    compiler = _Compiler()
    select = compiler.node(node)
    if not compiler.ctes:
        return select.sql, select.params
    return f"WITH {', '.join(compiler.ctes)} {select.sql}", compiler.cte_params + select.params


def compile_filter(spec: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
    """`compile_sqlite(parse_filter(spec))`: validate a filter spec and compile it."""
    return compile_sqlite(parse_filter(spec))
