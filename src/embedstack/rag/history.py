"""A conversation on disk: a JSON list of {"role", "content"} turns, rewritten atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from embedstack.errors import InvalidInputError
from embedstack.rag.llm import Message


def read_history(path: Path) -> list[Message]:
    """The turns in `path`; a missing file is an empty conversation."""
    if not path.exists():
        return []
    try:
        turns = json.loads(path.read_text(encoding="utf-8") or "[]")
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read history {path}: {exc}") from exc
    if not isinstance(turns, list) or not all(
        isinstance(t, dict) and t.get("role") in ("user", "assistant", "system")
        and isinstance(t.get("content"), str)
        for t in turns
    ):  # fmt: skip
        raise InvalidInputError(f'{path} is not a JSON list of {{"role", "content"}} turns')
    return turns


def write_history(path: Path, turns: list[Message]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(turns, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)
