"""Word .docx with python-docx: paragraphs and tables in body order, headings as structure."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from embedstack.errors import IngestError
from embedstack.ingest.documents import Block, Document
from embedstack.ingest.loaders.headings import HeadingTrail

_HEADING_STYLE = re.compile(r"^(?:heading\s*(\d)|title)$", re.I)


def load_docx(path: Path, data: bytes) -> list[Document]:
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise IngestError(f"damaged DOCX file: {exc}") from exc
    trail = HeadingTrail()
    blocks: list[Block] = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            blocks.append(Block(_table_text(item), heading_path=trail.path, kind="table"))
            continue
        level = _heading_level(item)
        if level:
            trail.enter(level, item.text)
            blocks.append(Block(item.text, heading_path=trail.path, kind="heading"))
        else:
            blocks.append(Block(item.text, heading_path=trail.path))
    title = document.core_properties.title or ""
    return [Document.from_blocks(path, "docx", blocks, title=title)]


def _heading_level(paragraph: Paragraph) -> int:
    match = _HEADING_STYLE.match((paragraph.style.name if paragraph.style else "") or "")
    if not match or not paragraph.text.strip():
        return 0
    return int(match.group(1)) if match.group(1) else 1


def _table_text(table: Table) -> str:
    """One line per row, cells separated by ' | ' (merged cells appear once)."""
    lines = []
    for row in table.rows:
        cells = list(dict.fromkeys(cell.text.strip() for cell in row.cells))
        lines.append(" | ".join(cells))
    return "\n".join(lines)
