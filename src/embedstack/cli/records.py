"""Read `{"id", "text", ...metadata}` JSON lines, naming the line of any problem."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedstack.errors import InvalidInputError


@dataclass
class Records:
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)


def read_jsonl_records(path: Path) -> Records:
    """Parse the whole file before anything is stored, so a bad line stores nothing."""
    records = Records()
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInputError(f"{where}: not valid JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise InvalidInputError(f"{where}: expected a JSON object")
                id_, text = row.pop("id", None), row.pop("text", None)
                if isinstance(id_, int) and not isinstance(id_, bool):
                    id_ = str(id_)
                if not isinstance(id_, str) or not id_:
                    raise InvalidInputError(f"{where}: 'id' must be a non-empty string")
                if not isinstance(text, str) or not text.strip():
                    raise InvalidInputError(f"{where}: 'text' must be a non-empty string")
                records.ids.append(id_)
                records.texts.append(text)
                records.metadata.append(row)
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    if not records.ids:
        raise InvalidInputError(f"{path} has no records")
    return records
