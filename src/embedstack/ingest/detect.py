"""Decide a file's format from its first bytes first, its extension second.

Content wins because files are misnamed in the wild (a PDF saved as .txt, an HTML page saved
as .md); the extension only chooses between text formats that look alike.
"""

from __future__ import annotations

import codecs
import io
import unicodedata
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
    # Speech, transcribed by Whisper (pip install "embedstack[audio]").
    ".wav": "audio",
    ".mp3": "audio",
    ".flac": "audio",
    ".ogg": "audio",
    ".oga": "audio",
    ".opus": "audio",
    ".m4a": "audio",
    ".webm": "audio",
}
FORMATS = sorted(set(EXTENSIONS.values()))
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SAMPLE_BYTES = 4096
# Containers whose first bytes say "audio" whatever the name (WAV, FLAC, Ogg, MP3 with an ID3
# tag, Matroska/WebM); MP4/M4A say "ftyp" at offset 4. A bare MPEG frame header (0xFFEx) is
# too short to trust on its own, so it counts only under an audio extension.
_AUDIO_MAGIC = (b"fLaC", b"OggS", b"ID3", b"\x1a\x45\xdf\xa3")
_TEXT_CONTROLS = frozenset("\t\n\r\f\v")


def bomless_utf16(data: bytes) -> str | None:
    """The encoding ("utf-16-le" or "-be") when `data` is UTF-16 text without a BOM, else None.

    Characters below U+0100 (Latin letters, digits, spaces, line breaks) have a zero high
    byte, so such text has NULs at odd offsets (little-endian) or even ones (big-endian) and
    almost none at the others; binary data has NULs at both, or next to none. The sample must
    then decode cleanly (no lone surrogates) to characters that are not control codes.
    """
    if len(data) % 2:
        return None
    sample = data[:_SAMPLE_BYTES]
    pairs = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    encoding, high, low = ("utf-16-le", odd, even) if odd > even else ("utf-16-be", even, odd)
    if high < max(2, pairs // 20) or low * 4 > high:
        return None
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
    except UnicodeDecodeError:
        return None
    strange = sum(
        1
        for char in text
        if unicodedata.category(char) in ("Cc", "Cn", "Co") and char not in _TEXT_CONTROLS
    )
    return encoding if strange * 100 <= len(text) else None


def detect_format(path: Path, data: bytes) -> str:
    """One of FORMATS, or IngestError naming what the file is instead."""
    head = data[:4096]
    if not data:
        raise IngestError("empty file (0 bytes)")
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_format(data)
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        raise IngestError(
            "an image: images go into an image collection (e.g. --model efficientnet-lite0)"
        )
    if _is_audio(head):
        return "audio"
    if EXTENSIONS.get(path.suffix.lower()) == "audio":  # an MP3 without a tag, or not audio
        if _is_mpeg_frame(head):
            return "audio"
        raise IngestError(f"not an audio file despite its name ({path.suffix.lower()})")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise IngestError("legacy Office file (.doc/.xls): save it as .docx first")
    utf16 = "utf-16" if head.startswith(_UTF16_BOMS) else bomless_utf16(data)
    if utf16:  # look for markup in the characters, not in bytes interleaved with NULs
        head = head.decode(utf16, "replace").encode("utf-8")
    elif b"\x00" in head:
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


def _is_audio(head: bytes) -> bool:
    if head.startswith(_AUDIO_MAGIC):
        return True
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in _MP4_AUDIO_BRANDS


_MP4_AUDIO_BRANDS = frozenset((b"M4A ", b"M4B ", b"mp42", b"isom", b"mp41", b"dash", b"iso5"))


def _is_mpeg_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, then a valid version, layer and bit rate."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer, bitrate = (head[1] >> 3) & 3, (head[1] >> 1) & 3, head[2] >> 4
    return version != 1 and layer != 0 and bitrate != 15


def _zip_format(data: bytes) -> str:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except zipfile.BadZipFile as exc:
        raise IngestError(f"damaged ZIP/DOCX file: {exc}") from exc
    if "word/document.xml" in names:
        return "docx"
    raise IngestError("a ZIP archive that is not a Word (.docx) document")
