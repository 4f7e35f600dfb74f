"""Decide a file's format from its first bytes first, its extension second.

Content wins because files are misnamed in the wild (a PDF saved as .txt, an HTML page saved
as .md); the extension only chooses between text formats that look alike.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from embedstack.errors import IngestError

EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
FORMATS = sorted(set(EXTENSIONS.values()))
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")


def detect_format(path: Path, data: bytes) -> str:
    """One of FORMATS, or IngestError naming what the file is instead."""
    head = data[:4096]
    if not data:
        raise IngestError("empty file (0 bytes)")
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_format(data)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise IngestError("legacy Office file (.doc/.xls): save it as .docx first")
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IngestError("binary content, not text (NUL bytes)")
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith(_HTML_MARKERS) or (start.startswith(b"<?xml") and b"<html" in start):
        return "html"
    by_extension = EXTENSIONS.get(path.suffix.lower())
    if by_extension in {"pdf", "docx"}:  # the name promises a binary format the bytes lack
        raise IngestError(f"not a {by_extension.upper()} file despite its name")
    if by_extension:
        return by_extension
    if start.startswith(b"{"):
        return "jsonl"
    return "text"


def _zip_format(data: bytes) -> str:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except zipfile.BadZipFile as exc:
        raise IngestError(f"damaged ZIP/DOCX file: {exc}") from exc
    if "word/document.xml" in names:
        return "docx"
    raise IngestError("a ZIP archive that is not a Word (.docx) document")
