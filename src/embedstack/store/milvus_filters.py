"""Filter trees (filters.py) compiled to one Milvus boolean expression, with `matches` semantics.

Milvus compares JSON values loosely (a number may meet a string, `true` may equal 1), and a
field name could hold any character. So each chunk also stores its scalar metadata values a
second time, in the JSON field `keys`, under a typed, hashed key (`filter_keys`): `t_<hash>`
for text, `n_<hash>` for numbers, `b_<hash>` for booleans. A condition on "price" with a
number then reads only `keys["n_…"]`, which holds numbers only, so kinds never mix, and no
field name is ever spliced into an expression. Values are written as literals: strings as JSON
strings (Milvus's parser reads the same escapes), numbers in decimal.

Missing fields: `$ne`/`$nin` match rows without the field (as in MongoDB). Milvus Lite, like
Milvus 2.5+, gives a comparison on a missing JSON key the value null (and `not null` is null),
so a negation is written `not (exists K and K == v)`; `null_safe=False` drops `exists` for
servers without it (Milvus 2.3), where a missing key compares false.

Numbers: integers beyond int64 are stored and compared as the nearest double (as `comparable`
does); NaN is not stored (it equals nothing), ±inf is stored as ±max double. Constant parts (a
NaN in a filter) fold to True/False before anything reaches Milvus.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from embedstack.store.filters import And, Compare, FilterNode, In, Or, comparable, value_kind

KEYS_FIELD = "keys"
_OPS = {"eq": "==", "ne": "==", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
MAX_DOUBLE = sys.float_info.max

Expr = str | bool  # an expression, or a constant that was folded away


def filter_key(field: str, kind: str) -> str:
    """The `keys` entry that holds `field`'s values of `kind` (text, number or bool)."""
    return f"{kind[0]}_{hashlib.sha1(field.encode('utf-8')).hexdigest()[:24]}"


def _stored_number(value: Any) -> float | int | None:
    number = comparable(value)
    if isinstance(number, float):
        if math.isnan(number):
            return None
        if math.isinf(number):
            return MAX_DOUBLE if number > 0 else -MAX_DOUBLE
    return number


def filter_keys(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The typed copy of one chunk's scalar metadata that filters read."""
    out: dict[str, Any] = {}
    for field, value in metadata.items():
        kind = value_kind(value)
        if kind == "number":
            value = _stored_number(value)
            if value is None:
                continue
        elif kind is None:
            continue
        out[filter_key(field, kind)] = value
    return out


def literal(value: Any) -> str:
    """A value as a Milvus expression literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _ref(field: str, kind: str) -> str:
    return f'{KEYS_FIELD}["{filter_key(field, kind)}"]'


def _all(parts: Iterator[Expr]) -> Expr:
    kept: list[str] = []
    for part in parts:
        if part is False:
            return False
        if part is not True:
            kept.append(part)
    if not kept:
        return True
    return kept[0] if len(kept) == 1 else "(" + " and ".join(kept) + ")"


def _any(parts: Iterator[Expr]) -> Expr:
    kept: list[str] = []
    for part in parts:
        if part is True:
            return True
        if part is not False:
            kept.append(part)
    if not kept:
        return False
    return kept[0] if len(kept) == 1 else "(" + " or ".join(kept) + ")"


class _Compiler:
    def __init__(self, null_safe: bool) -> None:
        self.null_safe = null_safe

    def _not(self, field: str, kind: str, positive: Expr) -> Expr:
        """`$ne`/`$nin`: rows without the field (or with another kind) match too."""
        if isinstance(positive, bool):
            return not positive
        if self.null_safe:
            return f"not (exists {_ref(field, kind)} and {positive})"
        return f"not ({positive})"

    def _compare(self, node: Compare) -> Expr:
        value = comparable(node.value)
        if node.kind == "number":
            value = _stored_number(value)
            if value is None:  # NaN: equals nothing, orders nothing
                return node.op == "ne"
        positive = f"{_ref(node.field, node.kind)} {_OPS[node.op]} {literal(value)}"
        return self._not(node.field, node.kind, positive) if node.op == "ne" else positive

    def _member(self, node: In) -> Expr:
        parts: list[Expr] = []
        for kind, values in node.by_kind.items():
            ref = _ref(node.field, kind)
            if kind == "number":
                values = [v for v in map(_stored_number, values) if v is not None]
            terms = _any(f"{ref} == {literal(v)}" for v in dict.fromkeys(values))
            parts.append(self._not(node.field, kind, terms) if node.negate else terms)
        return _all(iter(parts)) if node.negate else _any(iter(parts))

    def node(self, node: FilterNode) -> Expr:
        if isinstance(node, And):
            return _all(self.node(child) for child in node.children)
        if isinstance(node, Or):
            return _any(self.node(child) for child in node.children)
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, In):
            return self._member(node)
        raise TypeError(f"not a filter node: {node!r}")


def compile_milvus(node: FilterNode | None, null_safe: bool = True) -> Expr:
    """The Milvus expression for `node`: a string, or True (everything) / False (nothing)."""
    if node is None:
        return True
    return _Compiler(null_safe).node(node)
