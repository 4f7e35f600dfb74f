"""Plain text: decode whatever the encoding, split paragraphs on blank lines."""

from __future__ import annotations

import re
from pathlib import Path

from charset_normalizer import from_bytes

from embedstack.errors import IngestError
from embedstack.ingest.cleaning import replace_surrogates
from embedstack.ingest.detect import bomless_utf16
from embedstack.ingest.documents import Block, Document

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
MIN_VALID_PER_BAD_BYTE = 10  # valid non-ASCII letters per bad byte for damaged UTF-8
MIN_TEXT_PER_BAD_BYTE = 100  # letters per bad byte for text no encoding fits (not binary)


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding): by BOM, as UTF-16 without BOM, as UTF-8, then by charset detection.

    BOM-less UTF-16 goes before UTF-8: English in UTF-16 is valid UTF-8, with a NUL after
    every letter. A lone surrogate (in UTF-16, or encoded in UTF-8 as JavaScript and Java
    write it) becomes U+FFFD rather than sending the whole file to charset detection.
    """
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    encoding = encoding or bomless_utf16(data)
    if encoding is None:
        try:
            return replace_surrogates(data.decode("utf-8", "surrogatepass")), "utf-8"
        except UnicodeDecodeError:
            pass
        damaged, bad, valid = _utf8_with_replacements(data)
        if bad * MIN_VALID_PER_BAD_BYTE <= valid:  # UTF-8 cut mid-letter, or a stray byte
            return damaged, "utf-8"
        try:
            encoding = _legacy_encoding(data[:1_000_000])
        except IngestError:  # no legacy encoding fits either: nearly all text, or binary?
            if bad * MIN_TEXT_PER_BAD_BYTE <= len(damaged):
                return damaged, "utf-8"
            raise
    try:
        return replace_surrogates(data.decode(encoding, "surrogatepass")), encoding
    except UnicodeDecodeError as exc:
        raise IngestError(f"undecodable text (best guess {encoding}): {exc}") from exc


def _utf8_with_replacements(data: bytes) -> tuple[str, int, int]:
    """(text, bad bytes, valid non-ASCII letters): UTF-8 read with U+FFFD for each bad byte.

    Many valid multi-byte letters around a few bad bytes is damaged UTF-8 (a file cut
    mid-letter, one stray byte); a Latin-1 text has next to none (é then a plain letter is
    not valid UTF-8), so it still goes to charset detection.
    """
    text = replace_surrogates(data.decode("utf-8", "replace"))
    replaced = text.count("\ufffd")
    bad = replaced - data.count("\ufffd".encode())
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    return text, bad, non_ascii - replaced


def _legacy_encoding(sample: bytes) -> str:
    """charset-normalizer's guess; among equally good guesses, Windows-1252 (Western Europe).

    Short Latin-1 texts fit cp1250 just as well, and the detector then picks by name order;
    cp1252 is by far the most common legacy encoding, and the web's default for "latin-1".
    """
    matches = from_bytes(sample)
    if not len(matches):
        raise IngestError("binary content, not text (no character encoding fits)")
    best = matches[0]
    for match in matches:
        if (match.chaos, -match.coherence) > (best.chaos, -best.coherence):
            break
        if "cp1252" in match.could_be_from_charset:
            return "cp1252"
    return best.encoding


def paragraphs(text: str, **block_fields) -> list[Block]:
    return [Block(p, **block_fields) for p in PARAGRAPH_BREAK.split(text) if p.strip()]


def load_text(path: Path, data: bytes) -> list[Document]:
    text, encoding = decode_text(data)
    return [Document.from_blocks(path, "text", paragraphs(text), metadata={"encoding": encoding})]
