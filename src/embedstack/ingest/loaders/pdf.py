"""PDF: text per page with PDFium (pypdfium2: BSD/Apache; PyMuPDF would be AGPL).

PDFium reads the SEC 10-Q filings 16x faster than pypdf and without its size limits. Running
headers and footers are removed before the pages are joined; the most common one serves as the
document's title when the PDF metadata has no readable title.
"""

from __future__ import annotations

import re
from pathlib import Path

import pypdfium2 as pdfium

from embedstack.errors import IngestError
from embedstack.ingest.cleaning import most_common_running_line, running_lines, strip_running_lines
from embedstack.ingest.documents import Document
from embedstack.ingest.loaders.text import paragraphs

_WORD = re.compile(r"[^\W\d_]{2,}")
# PDFium marks a hyphen it removed at a line end with \x02: "infor\x02mation" is one word.
_PDFIUM_SOFT_HYPHEN = "\x02"


def load_pdf(path: Path, data: bytes) -> list[Document]:
    if b"%%EOF" not in data[-2048:]:
        raise IngestError("truncated PDF (no %%EOF marker at the end)")
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise IngestError("encrypted PDF: it needs a password") from exc
        raise IngestError(f"damaged PDF: {exc}") from exc
    try:
        pages = [_page_text(pdf, number) for number in range(len(pdf))]
        title = (pdf.get_metadata_dict().get("Title") or "").strip()
    finally:
        pdf.close()
    if not any(page.strip() for page in pages):
        raise IngestError("no text layer (a scanned PDF? OCR it first)")
    keys = running_lines(pages)
    if len(_WORD.findall(title)) < 2:  # an accession number or a file name, not a title
        title = most_common_running_line(pages, keys)
    blocks = [
        block
        for number, page in enumerate(pages, start=1)
        for block in paragraphs(strip_running_lines(page, keys), page=number)
    ]
    return [Document.from_blocks(path, "pdf", blocks, title=title)]


def _page_text(pdf: pdfium.PdfDocument, index: int) -> str:
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        text = textpage.get_text_bounded()
        textpage.close()
    except pdfium.PdfiumError as exc:
        raise IngestError(f"damaged PDF: page {index + 1}: {exc}") from exc
    finally:
        page.close()
    return text.replace("\r\n", "\n").replace(_PDFIUM_SOFT_HYPHEN, "")
