"""FASTA, FASTQ and GenBank files → one `SequenceRecord` per sequence (BioPython's `SeqIO`).

Each record becomes one row: its letters are what a k-mer model embeds, and its metadata
(id, description, length, alphabet; GenBank's organism, taxonomy, molecule type and feature
count; FASTQ's mean read quality) is what filters select on. Gzip-compressed files are read
too. A file with a bad record fails whole, with the record named, so an ingest keeps what was
stored for it before. BioPython (the `bio` extra) is imported only when a file is read.
"""

from __future__ import annotations

import gzip
import io
import re
import statistics
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedstack.errors import IngestError, InvalidInputError
from embedstack.models.alphabets import (
    ALPHABET_NAMES,
    AlphabetName,
    check_letters,
    detect_alphabet,
    get_alphabet,
)

SEQUENCE_FORMATS = ("fasta", "fastq", "genbank")
SEQUENCE_EXTENSIONS: dict[str, str] = {
    **dict.fromkeys((".fa", ".fasta", ".fna", ".ffn", ".faa", ".fas", ".frn"), "fasta"),
    **dict.fromkeys((".fastq", ".fq"), "fastq"),
    **dict.fromkeys((".gb", ".gbk", ".genbank", ".gbff"), "genbank"),
}
GZIP_SUFFIXES = (".gz", ".bgz")  # BGZF (bgzip) is gzip with extra fields
MAX_UNPACKED_BYTES = 1 << 30  # a gzip file that unpacks past 1 GiB is refused, not read
_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_BYTES = 65536
_SEQUENCE_LINE = re.compile(rb"[A-Za-z*.\-]+")
_LABELS = {"fasta": "FASTA", "fastq": "FASTQ", "genbank": "GenBank"}


@dataclass(frozen=True)
class SequenceRecord:
    """One sequence of a file: `sequence` is its letters as written (gaps kept)."""

    id: str
    description: str
    sequence: str
    alphabet: AlphabetName
    metadata: dict[str, Any] = field(default_factory=dict)


def sequence_format(path: Path, data: bytes) -> str | None:
    """The sequence format of a file, or None when it is not one.

    A sequence extension (`.fa`, `.fastq.gz`, `.gbk`…) makes it one; its content then picks
    among the three (a GenBank file named `.fa` is read as GenBank). Without an extension the
    content alone decides. Any other extension is left to the text loaders: a Markdown file
    may well start with ">".
    """
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if suffixes and suffixes[-1] in GZIP_SUFFIXES:
        suffixes.pop()
    by_extension = SEQUENCE_EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if by_extension is None and path.suffix:
        return None
    return sniff_sequence_format(data) or by_extension


def sniff_sequence_format(data: bytes) -> str | None:
    """The format by content: "fasta" (">id" then letters), "fastq" ("@id", letters, "+")
    or "genbank" ("LOCUS"), from the first bytes (unpacked first when gzip-compressed); None
    otherwise."""
    head = _head(data)
    lines = head.lstrip(b"\xef\xbb\xbf \t\r\n").splitlines()
    if not lines:
        return None
    first = lines[0]
    if first.startswith(b"LOCUS"):
        return "genbank"
    second = lines[1].strip() if len(lines) > 1 else b""
    if first.startswith(b">") and _SEQUENCE_LINE.fullmatch(second):
        return "fasta"
    if (
        first.startswith(b"@")
        and len(lines) > 2
        and _SEQUENCE_LINE.fullmatch(second)
        and lines[2].startswith(b"+")
    ):
        return "fastq"
    return None


def read_sequences(
    path: Path, data: bytes, format: str, alphabet: str = "auto"
) -> list[SequenceRecord]:
    """Every record of `data` (the bytes of `path`) read as `format` ("fasta", "fastq",
    "genbank"); `alphabet` "auto" (per record: GenBank's molecule type, FASTQ reads are DNA,
    else detected from the letters), "dna" or "protein".

    IngestError (one line, naming the record) for a file with no records, a malformed or
    truncated one, an empty sequence, or a letter the record's alphabet does not allow.
    """
    if format not in SEQUENCE_FORMATS:
        raise IngestError(f"unknown sequence format {format!r}; one of {SEQUENCE_FORMATS}")
    if alphabet != "auto" and alphabet not in ALPHABET_NAMES:
        raise IngestError(f"alphabet must be auto, dna or protein, got {alphabet!r}")
    text = _text(_unpacked(data), format)
    try:
        from Bio import SeqIO  # the `bio` extra: imported only when a sequence file is read
    except ImportError:
        raise IngestError(
            f"reading {_LABELS[format]} needs BioPython: pip install 'embedstack[bio]'"
        ) from None

    label = _LABELS[format]
    if format == "fasta" and not text.lstrip().startswith(">"):
        raise IngestError("not FASTA: the first line does not start with '>'")
    records: list[SequenceRecord] = []
    last = "the first record"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BioPython warns on odd but readable lines
            for index, parsed in enumerate(SeqIO.parse(io.StringIO(text), format)):
                records.append(_record(parsed, index, format, alphabet))
                last = f"record {parsed.id!r}"
    except IngestError:
        raise
    except Exception as exc:  # BioPython raises ValueError and others on malformed input
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = "in the first record" if not records else f"after {last}"
        raise IngestError(f"malformed {label} {where}: {reason}") from exc
    if not records:
        raise IngestError(f"no sequences found in this {label} file")
    return records


def _record(parsed: Any, index: int, format: str, alphabet: str) -> SequenceRecord:
    name = f"record {parsed.id!r}" if parsed.id else f"record {index + 1}"
    try:
        sequence = str(parsed.seq)
    except Exception as exc:  # Bio.Seq.UndefinedSequenceError: a GenBank CONTIG-only record
        raise IngestError(f"{name}: no sequence letters in the file ({exc})") from exc
    if not sequence:
        raise IngestError(f"{name}: empty sequence")
    kind = _alphabet(parsed, sequence, format, alphabet)
    try:
        check_letters(sequence, get_alphabet(kind))
    except InvalidInputError as exc:
        raise IngestError(f"{name}: {exc}") from None
    description = parsed.description or ""
    if format != "genbank" and description.startswith(parsed.id):  # the title repeats the id
        description = description[len(parsed.id) :].strip()
    metadata: dict[str, Any] = {
        "record_id": parsed.id,
        "record_index": index,
        "description": description,
        "length": len(sequence),
        "alphabet": kind,
        "sequence_format": format,
    }
    if format == "genbank":
        metadata.update(_genbank_metadata(parsed))
    elif format == "fastq":
        qualities = parsed.letter_annotations.get("phred_quality") or [0]
        metadata["mean_quality"] = round(float(statistics.fmean(qualities)), 2)
    return SequenceRecord(parsed.id, description, sequence, kind, metadata)


def _alphabet(parsed: Any, sequence: str, format: str, alphabet: str) -> AlphabetName:
    if alphabet in ALPHABET_NAMES:
        return alphabet
    if format == "fastq":
        return "dna"
    molecule = str(parsed.annotations.get("molecule_type", "")).lower()
    if molecule:
        return "protein" if molecule == "protein" else "dna"
    return detect_alphabet(sequence)


def _genbank_metadata(parsed: Any) -> dict[str, Any]:
    annotations = parsed.annotations
    found = {
        "organism": annotations.get("organism"),
        "taxonomy": list(annotations.get("taxonomy") or []),
        "molecule_type": annotations.get("molecule_type"),
        "topology": annotations.get("topology"),
        "feature_count": len(parsed.features),
    }
    return {key: value for key, value in found.items() if value not in (None, "", [])}


def _unpacked(data: bytes) -> bytes:
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as packed:
            unpacked = packed.read(MAX_UNPACKED_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"damaged gzip file: {exc}") from exc
    if len(unpacked) > MAX_UNPACKED_BYTES:
        raise IngestError(f"unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB")
    return unpacked


def _head(data: bytes) -> bytes:
    if not data.startswith(_GZIP_MAGIC):
        return data[:_SNIFF_BYTES]
    try:
        return zlib.decompressobj(wbits=31).decompress(data[:_SNIFF_BYTES], _SNIFF_BYTES)
    except zlib.error:
        return b""


def _text(data: bytes, format: str) -> str:
    if not data.strip():
        raise IngestError(f"no sequences found: the {_LABELS[format]} file is empty")
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise IngestError("binary content, not a sequence file (NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"not a text file: byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8"
        ) from None
