"""CSV and JSONL: one document per row; one column is the text, the others become metadata."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from embedstack.errors import IngestError
from embedstack.ingest.documents import Block, Document
from embedstack.ingest.loaders.text import decode_text, paragraphs

TEXT_FIELD_NAMES = ("text", "content", "body", "document", "passage", "description")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
csv.field_size_limit(64 * 1024 * 1024)


def load_csv(path: Path, data: bytes, text_field: str | None = None) -> list[Document]:
    text, _ = decode_text(data)
    sample = text[:65536]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    try:
        # A stream, not str.splitlines(): that also splits at U+2028, U+0085, form feeds and
        # the like, which csv writes unquoted inside cells, cutting a row in two.
        rows = list(csv.DictReader(io.StringIO(text, newline=""), dialect=dialect))
    except csv.Error as exc:
        raise IngestError(f"malformed CSV: {exc}") from exc
    if not rows:
        raise IngestError("CSV has a header but no rows")
    records = [{k: _csv_value(v) for k, v in row.items() if k is not None} for row in rows]
    return _documents(path, "csv", records, text_field)


def load_jsonl(path: Path, data: bytes, text_field: str | None = None) -> list[Document]:
    text, _ = decode_text(data)
    records: list[Mapping[str, Any]] = []
    # Lines end at CR, LF or both, which JSON never has raw inside a string; not at what
    # str.splitlines() also cuts at: json.dumps(ensure_ascii=False) writes U+2028, U+0085 and
    # the like raw inside strings.
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestError(f"line {number} is not valid JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise IngestError(f"line {number} is not a JSON object")
        records.append(record)
    if not records:
        raise IngestError("no JSON objects in the file")
    return _documents(path, "jsonl", records, text_field)


def _csv_value(value: str | None) -> Any:
    """CSV cells are strings; numbers become numbers so filters like $gte work on them."""
    if value is None:
        return ""
    value = value.strip()
    if _NUMBER.fullmatch(value):
        is_integer = "." not in value and "e" not in value.lower()
        return int(value) if is_integer else float(value)
    return value


def pick_text_field(records: Sequence[Mapping[str, Any]], wanted: str | None) -> str:
    """The named field, else a conventional name, else the field with the longest strings."""
    fields = list(dict.fromkeys(key for record in records[:1000] for key in record))
    if wanted is not None:
        if wanted not in fields:
            raise IngestError(f"no field {wanted!r} (fields: {', '.join(fields)})")
        return wanted
    for name in TEXT_FIELD_NAMES:
        if name in fields:
            return name
    lengths = {
        field: sum(len(r[field]) for r in records[:1000] if isinstance(r.get(field), str))
        for field in fields
    }
    if not lengths or max(lengths.values()) == 0:
        raise IngestError("no text field found; name one with --text-field")
    return max(lengths, key=lengths.__getitem__)


def _documents(
    path: Path, format: str, records: Sequence[Mapping[str, Any]], text_field: str | None
) -> list[Document]:
    field = pick_text_field(records, text_field)
    documents = []
    for number, record in enumerate(records, start=1):
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            continue
        extra = {k: v for k, v in record.items() if k != field}
        blocks: list[Block] = paragraphs(value)
        documents.append(Document.from_blocks(path, format, blocks, record=number, metadata=extra))
    if not documents:
        raise IngestError(f"field {field!r} is empty in every row")
    return documents
