"""Reading data-set files: text (gzip or plain) and JSON lines, with one clear error each."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from embedstack.errors import DatasetError


def open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise DatasetError(f"{path}:{number}: expected a JSON object")
                yield number, record
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable ({exc})") from exc
