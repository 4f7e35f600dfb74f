"""Real photos for the image tests: scikit-learn's two bundled sample photos (a temple in
China, a flower), each also saved flipped, cropped and in other formats."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def sample_photos() -> dict[str, Image.Image]:
    from sklearn.datasets import load_sample_images

    images = load_sample_images()
    names = [Path(name).stem for name in images.filenames]  # china, flower
    pairs = zip(names, images.images, strict=True)
    return {name: Image.fromarray(np.asarray(pixels)) for name, pixels in pairs}


def write_photo_folder(folder: Path) -> dict[str, list[Path]]:
    """Each photo as JPEG, plus a mirrored PNG and a cropped WebP of it: {photo: files}."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for name, photo in sample_photos().items():
        width, height = photo.size
        crop = photo.crop((width // 8, height // 8, width - width // 8, height - height // 8))
        files = [folder / f"{name}{end}" for end in (".jpg", "-mirrored.png", "-crop.webp")]
        photo.save(files[0], quality=90)
        ImageOps.mirror(photo).save(files[1])
        crop.save(files[2], quality=90)
        written[name] = files
    return written


def query_photo(folder: Path, name: str) -> Path:
    """A new view of a sample photo, not in the collection: shrunk and slightly rotated."""
    photo = sample_photos()[name]
    view = photo.resize((photo.width // 2, photo.height // 2)).rotate(4, expand=False)
    path = folder / f"query-{name}.jpg"
    view.save(path, quality=85)
    return path


def png_header(width: int, height: int, bit_depth: int = 1, colour: int = 0) -> bytes:
    """A PNG that declares its size but holds no pixel data (a decompression-bomb stand-in)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
