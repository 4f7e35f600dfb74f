"""Filter trees (see filters.py) compiled to one SQLite SELECT of the matching vids.

The filter runs inside the same SQLite database that selects candidate vectors; that is what
lets a filtered search return k hits. Each scalar metadata value is also stored as a row of
`chunk_meta(vid, key, kind, value)`, indexed on (key, kind, value), so every condition is an
index range scan (`key = ? AND kind = ? AND value >= ?`), not a table scan, and the tree becomes
set operations on those scans: `$and` is INTERSECT, `$or` UNION, `$ne`/`$nin` EXCEPT (from the
other conditions of their `$and`, or from all rows).

Three rewrites keep plain filters cheap and let every filter within filters.py's limits run:

* Range conditions on one field in one `$and` share a scan (`value >= ? AND value < ?`), and
  equality/`$in` branches of an `$or` on one field become a single `value IN (...)`.
* A compound SELECT never has more than `COMPOUND_TERMS` terms; longer ones are split into
  nested groups (SQLite refuses more than 500, SQLITE_MAX_COMPOUND_SELECT).
* Sub-selects are nested at most `SQL_NESTING` deep; a deeper part is hoisted into a common
  table expression (`WITH filter1(vid) AS (...)`) and referred to by name. SQLite's parser
  stack overflows at about 14 nested `SELECT vid FROM (... INTERSECT ...)`; a chain of
  thousands of CTEs is fine. A filter shallow enough needs no CTE and compiles as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

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
COMPOUND_TERMS = 32  # per compound SELECT (SQLite's cap is 500; see _compound)
SQL_NESTING = 6  # nested sub-selects before hoisting into a CTE; SQLite overflows near 14
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
        kept[:0] = [self._range(field, kind, group) for (field, kind), group in ranges.items()]
        if not kept:
            kept.append(self._all())
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
            if isinstance(child, Compare | In) and not child.negated:
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
