"""Decode image files for the image encoders: one RGB picture, upright, or a one-line error.

Pillow is imported only when an image is read, so listing `IMAGE_EXTENSIONS` (what ingest
looks for) costs nothing. The pixel count is checked from the header, before any pixel is
decoded, so a 20,000 x 20,000 PNG (or a decompression bomb) fails in microseconds.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embedstack.errors import InvalidInputError

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
)
# Above the 108-MP phone cameras (12,000 x 9,000), below Pillow's own decompression-bomb error
# (179 M); a 100-MP RGB picture decodes into 300 MB.
MAX_PIXELS = 120_000_000

# EXIF tags (see the EXIF 2.3 standard): the camera and when the picture was taken.
_MAKE, _MODEL, _DATETIME, _EXIF_IFD, _DATETIME_ORIGINAL = 0x010F, 0x0110, 0x0132, 0x8769, 0x9003


@dataclass(frozen=True)
class ImageInfo:
    """What the file says about itself (before orientation is applied: width x height as
    stored), for metadata and filters."""

    width: int
    height: int
    format: str  # Pillow's name: "JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"
    mode: str  # as stored: "RGB", "RGBA", "P", "L", "CMYK", "I;16", ...
    frames: int  # > 1 for an animated GIF or WebP, a multi-page TIFF (the first is used)
    taken_at: str | None = None  # EXIF DateTimeOriginal (else DateTime), ISO 8601
    camera: str | None = None  # EXIF Make and Model

    def to_metadata(self) -> dict[str, str | int]:
        """The fields as flat metadata (None left out), e.g. for a collection row."""
        fields: dict[str, str | int | None] = {
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "frames": self.frames,
            "taken_at": self.taken_at,
            "camera": self.camera,
        }
        return {key: value for key, value in fields.items() if value is not None}


def read_image(
    path: str | Path, data: bytes | None = None, *, min_side: int | None = None
) -> tuple[Image, ImageInfo]:
    """The picture as an upright RGB image, and what the file says about itself.

    `data`: the file's bytes when the caller has read them already (`path` then only names
    it). `min_side`: the caller needs no more than this many pixels on the shorter side, so a
    large JPEG may be decoded at 1/2, 1/4 or 1/8 scale (several times faster, and the same
    picture after the caller's resize). Transparent pixels are laid on white; a GIF gives its
    first frame; 16-bit and float pictures are scaled to 8 bits. Any failure is an
    `InvalidInputError` naming the file.
    """
    from PIL import Image, ImageOps

    name = str(path)
    try:
        source = io.BytesIO(data) if data is not None else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InvalidInputError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    with source:
        try:
            with warnings.catch_warnings():
                # We enforce MAX_PIXELS ourselves; Pillow would warn from 89 M pixels. (Two
                # threads here at once can leave this one filter installed: harmless.)
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(source)
        except Image.DecompressionBombError:
            raise InvalidInputError(_too_many(name)) from None
        except Exception as exc:  # Pillow raises many types for files it cannot identify
            raise InvalidInputError(
                f"{name}: not an image Pillow can read ({_reason(exc)})"
            ) from exc
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InvalidInputError(_too_many(name, width, height))
            info = ImageInfo(
                width=width,
                height=height,
                format=image.format or "unknown",
                mode=image.mode,
                frames=int(getattr(image, "n_frames", 1)),
                **_exif_fields(image),
            )
            try:
                image.seek(0)
                if min_side and image.format == "JPEG":
                    scale = min(width, height) / min_side
                    image.draft("RGB", (max(1, int(width / scale)), max(1, int(height / scale))))
                image.load()
                upright = ImageOps.exif_transpose(image)
                return _to_rgb(upright), info
            except InvalidInputError:
                raise
            except Exception as exc:  # truncated or damaged data, unsupported compression
                raise InvalidInputError(
                    f"{name}: cannot decode the image ({_reason(exc)})"
                ) from exc


def _too_many(name: str, width: int | None = None, height: int | None = None) -> str:
    size = f" ({width:,} x {height:,})" if width and height else ""
    return f"{name}: image has too many pixels{size}; the limit is {MAX_PIXELS:,}"


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _exif_fields(image: Image) -> dict[str, str | None]:
    """taken_at and camera from EXIF; missing or malformed EXIF gives None, never an error."""
    try:
        exif = image.getexif()
        taken = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
        make, model = (str(exif.get(tag) or "").strip("\x00 ") for tag in (_MAKE, _MODEL))
    except Exception:  # EXIF in the wild is often broken; it is only metadata
        return {"taken_at": None, "camera": None}
    camera = model if make and model.startswith(make) else f"{make} {model}".strip()
    return {"taken_at": _iso_time(taken), "camera": camera or None}


def _iso_time(value: object) -> str | None:
    """EXIF's "YYYY:MM:DD HH:MM:SS" as ISO 8601; anything else is None."""
    try:
        return datetime.strptime(str(value).strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _to_rgb(image: Image) -> Image:
    """8-bit RGB: transparency laid on white, high bit depths scaled rather than clipped."""
    from PIL import Image as PILImage

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        if image.mode == "F" and top <= 1.0:
            top = 1.0
        scaled = np.clip(pixels / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return PILImage.fromarray(scaled).convert("RGB")
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return white.convert("RGB")
    return image.convert("RGB")
