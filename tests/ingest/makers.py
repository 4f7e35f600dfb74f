"""Real documents made in the tests: PDFs with reportlab, DOCX with python-docx, and text files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import docx
from reportlab.lib import pdfencrypt
from reportlab.lib.pagesizes import letter
from reportlab.pdfgen import canvas

PAGE_TOPICS = [
    "Volcanoes form where magma rises through the crust and erupts as lava and ash.",
    "Coral reefs grow in warm shallow seas and shelter a quarter of all marine species.",
    "Glaciers carve valleys as they slide downhill under their own enormous weight.",
    "Deserts receive less than ten inches of rain a year and have sparse vegetation.",
]


def pdf_bytes(pages: list[list[str]], *, header: str | None = None, password: str = "") -> bytes:
    """One list of lines per page; an optional running header and a page-number footer."""
    buffer = io.BytesIO()
    encrypt = pdfencrypt.StandardEncryption(password, canPrint=0) if password else None
    pdf = canvas.Canvas(buffer, pagesize=letter, encrypt=encrypt)
    for number, lines in enumerate(pages, start=1):
        if header:
            pdf.drawString(72, 750, header)
        y = 700
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 14
        pdf.drawString(300, 40, f"Page {number}")
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def write_pdf(path: Path, pages: list[list[str]], **options) -> Path:
    path.write_bytes(pdf_bytes(pages, **options))
    return path


def geology_pdf(path: Path) -> Path:
    """Four pages, a running header, one word hyphenated across a line break on page 2."""
    pages = [[topic] for topic in PAGE_TOPICS]
    pages[1] = [
        "Coral reefs grow in warm shallow seas and provide infor-",
        "mation about ocean temperature over centuries.",
    ]
    return write_pdf(path, pages, header="Field Guide to the Earth | Annual Report")


def write_docx(path: Path) -> Path:
    document = docx.Document()
    document.core_properties.title = "Kitchen handbook"
    document.add_heading("Kitchen handbook", level=1)
    document.add_paragraph("Welcome to the kitchen. Read this before your first shift.")
    document.add_heading("Knife safety", level=2)
    document.add_paragraph("Always cut away from your body and keep blades sharp.")
    document.add_heading("Cleaning", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Surface", "Product"
    table.cell(1, 0).text, table.cell(1, 1).text = "Steel counters", "Mild degreaser"
    document.save(str(path))
    return path


HTML_PAGE = """<!DOCTYPE html>
<html><head><title>Bicycle maintenance</title><script>var tracking = 1;</script></head>
<body>
<nav><a href="/">Home</a> <a href="/shop">Shop</a> Navigation menu links</nav>
<header class="site-header">Cycling World — the best bike site</header>
<main>
  <h1>Bicycle maintenance</h1>
  <p>Check tyre pressure every week; soft tyres puncture more easily.</p>
  <h2>Chains</h2>
  <p>Clean and oil the chain every 300 kilometres to stop rust and wear.</p>
  <ul><li>Use a degreaser</li><li>Wipe dry before oiling</li></ul>
</main>
<div class="cookie-banner">We use cookies to improve your experience.</div>
<footer>Copyright 2026 Cycling World. All rights reserved.</footer>
</body></html>
"""

MARKDOWN_NOTE = """---
tags: [garden]
---
# Garden notes

Tomatoes need full sun and deep, infrequent watering.

## Pests

Aphids cluster under leaves; a strong spray of **water** removes most of them.

### Slugs

Beer traps catch [slugs](https://example.org/slugs) overnight.

```
water_schedule = "weekly"
```
"""


def png_bytes(width: int = 32, height: int = 32) -> bytes:
    """A real PNG image (an RGB gradient), built with zlib: binary that must stay binary."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 8 % 256, y * 8 % 256, (x + y) % 256))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
