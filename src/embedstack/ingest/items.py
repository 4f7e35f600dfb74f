"""Files that become whole items rather than text chunks: images and biological sequences.

A text collection cuts files into chunks; a collection whose model embeds another modality
stores one row per image file or per sequence record instead. Each row keeps a text people
can read and keyword-search (an image's file name, the sequence itself) and the input its
model embeds (the image file's path, the sequence).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedstack.errors import IngestError, InvalidInputError

ITEM_MODALITIES = ("image", "sequence")
VALIDATE_SIDE = 64  # pixels on the shorter side when an image is only being checked


@dataclass
class Item:
    """One row to store from a non-text file."""

    key: str  # unique within its file: the row id is "<path>" or "<path>#<key>"
    text: str  # what is stored and shown: the image's file name, the sequence
    embed_input: str  # what the model reads: the image file's path, the sequence
    metadata: dict[str, Any] = field(default_factory=dict)


ItemReader = Callable[[Path, bytes], tuple[str, list[Item]]]  # -> (format, items)


def extensions(modality: str) -> frozenset[str]:
    """File name endings a folder walk picks up for a collection of this modality."""
    if modality == "image":
        from embedstack.models.image_files import IMAGE_EXTENSIONS

        return frozenset(IMAGE_EXTENSIONS)
    if modality == "sequence":
        from embedstack.ingest.sequences import GZIP_SUFFIXES, SEQUENCE_EXTENSIONS

        packed = {end + gz for end in SEQUENCE_EXTENSIONS for gz in GZIP_SUFFIXES}
        return frozenset(SEQUENCE_EXTENSIONS) | packed
    raise InvalidInputError(f"no item reader for {modality!r} collections")


def reader(modality: str) -> ItemReader:
    if modality == "image":
        return read_image_items
    if modality == "sequence":
        return read_sequence_items
    raise InvalidInputError(f"no item reader for {modality!r} collections")


def read_image_items(path: Path, data: bytes) -> tuple[str, list[Item]]:
    """One item per image file: decoded once here, so a broken or huge image is reported
    with its reason and the rest of the run goes on."""
    from embedstack.models.image_files import read_image

    try:  # decoded small: enough to find a broken file, and a large JPEG decodes 8x faster
        _, info = read_image(path, data, min_side=VALIDATE_SIDE)
    except InvalidInputError as exc:
        raise IngestError(_without_name(str(exc), path)) from None
    metadata: dict[str, Any] = {
        "image_format": info.format,
        "width": info.width,
        "height": info.height,
    }
    if info.frames > 1:
        metadata["frames"] = info.frames
    if info.taken_at:
        metadata["taken_at"] = info.taken_at
    if info.camera:
        metadata["camera"] = info.camera
    return "image", [Item("", path.name, str(path), metadata)]


def read_sequence_items(path: Path, data: bytes) -> tuple[str, list[Item]]:
    """One item per FASTA/FASTQ/GenBank record; the row's text is the sequence itself."""
    from embedstack.ingest.sequences import read_sequences, sequence_format

    format = sequence_format(path, data)
    if format is None:
        raise IngestError("not a FASTA, FASTQ or GenBank file")
    items: list[Item] = []
    seen: set[str] = set()
    for number, record in enumerate(read_sequences(path, data, format), start=1):
        key = record.id or f"record{number}"
        if key in seen:  # FASTA ids need not be unique; the row id must be
            key = f"{key}~{number}"
        seen.add(key)
        metadata = dict(record.metadata)
        metadata.update(record_id=record.id, alphabet=record.alphabet, length=len(record.sequence))
        if record.description:
            metadata["description"] = record.description
        items.append(Item(key, record.sequence, record.sequence, metadata))
    return format, items


def _without_name(message: str, path: Path) -> str:
    """The reason alone: the ingest report already names the file."""
    for prefix in (f"{path}: ", f"{path.name}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
