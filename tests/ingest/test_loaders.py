"""Each loader on a real file made here: text, page numbers, headings, offsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedstack.errors import IngestError
from embedstack.ingest.chunking import Chunker
from embedstack.ingest.detect import detect_format
from embedstack.ingest.loaders import load_documents
from embedstack.ingest.tokens import TokenCounter
from embedstack.models import find_spec
from tests.ingest.makers import HTML_PAGE, MARKDOWN_NOTE, PAGE_TOPICS, geology_pdf, write_docx


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter(find_spec("all-MiniLM-L6-v2").locate() / "tokenizer.json")


def load(path: Path, text_field: str | None = None):
    data = path.read_bytes()
    return load_documents(path, data, detect_format(path, data), text_field)


def chunks_of(document, counter, max_tokens=200):
    chunks = Chunker(counter, max_tokens).split(document)
    for chunk in chunks:
        assert document.text[chunk.start : chunk.end] == chunk.text
    return chunks


def test_pdf_pages_running_lines_and_hyphenation(tmp_path, counter):
    (document,) = load(geology_pdf(tmp_path / "geology.pdf"))
    assert document.format == "pdf"
    assert "information about ocean temperature" in document.text  # de-hyphenated
    assert "Field Guide" not in document.text and "Page 2" not in document.text
    assert document.title == "Field Guide to the Earth | Annual Report"
    chunks = chunks_of(document, counter, max_tokens=24)  # about one page per chunk
    pages = {topic.split()[0]: None for topic in PAGE_TOPICS}
    for chunk in chunks:
        for word in pages:
            if chunk.text.startswith(word):
                pages[word] = chunk.page
    assert pages == {"Volcanoes": 1, "Coral": 2, "Glaciers": 3, "Deserts": 4}


def test_docx_headings_and_tables(tmp_path, counter):
    (document,) = load(write_docx(tmp_path / "handbook.docx"))
    assert document.title == "Kitchen handbook"
    by_text = {c.text.split("\n")[-1]: c for c in chunks_of(document, counter)}
    knife = next(c for c in by_text.values() if "cut away" in c.text)
    assert knife.heading_path == ("Kitchen handbook", "Knife safety")
    table = next(c for c in by_text.values() if "Steel counters" in c.text)
    assert "Steel counters | Mild degreaser" in table.text
    assert table.heading_path == ("Kitchen handbook", "Cleaning")


def test_html_main_text_without_boilerplate(tmp_path, counter):
    path = tmp_path / "bikes.html"
    path.write_text(HTML_PAGE, encoding="utf-8")
    (document,) = load(path)
    assert document.title == "Bicycle maintenance"
    assert "tyre pressure" in document.text and "Use a degreaser" in document.text
    for boilerplate in ("Navigation menu", "best bike site", "cookies", "Copyright", "tracking"):
        assert boilerplate not in document.text
    chain = next(c for c in chunks_of(document, counter, 40) if "oil the chain" in c.text)
    assert chain.heading_path == ("Bicycle maintenance", "Chains")


def test_markdown_structure(tmp_path, counter):
    path = tmp_path / "garden.md"
    path.write_text(MARKDOWN_NOTE, encoding="utf-8")
    (document,) = load(path)
    assert "tags:" not in document.text  # front matter
    assert "**" not in document.text and "https://" not in document.text
    assert "a strong spray of water removes" in document.text
    assert 'water_schedule = "weekly"' in document.text
    chunks = chunks_of(document, counter, 30)
    slugs = next(c for c in chunks if "Beer traps" in c.text)
    assert slugs.heading_path == ("Garden notes", "Pests", "Slugs")
    tomatoes = next(c for c in chunks if "Tomatoes" in c.text)
    assert tomatoes.heading_path == ("Garden notes",) and "Beer" not in tomatoes.text


def test_csv_text_column_and_typed_metadata(tmp_path):
    path = tmp_path / "tickets.csv"
    path.write_text(
        "id,year,body,zip\n7,2024,The printer on floor 2 is jammed again.,00501\n"
        "8,2025,Password reset emails never arrive.,02134\n",
        encoding="utf-8",
    )
    documents = load(path)
    assert [d.text for d in documents] == [
        "The printer on floor 2 is jammed again.",
        "Password reset emails never arrive.",
    ]
    assert documents[0].record == 1
    assert documents[0].metadata == {"id": 7, "year": 2024, "zip": "00501"}
    assert [d.text for d in load(path, text_field="zip")] == ["00501", "02134"]
    with pytest.raises(IngestError, match="no field 'missing'"):
        load(path, text_field="missing")


def test_jsonl_records(tmp_path):
    path = tmp_path / "faq.jsonl"
    rows = [{"q": "Where is the office?", "text": "Our office is at 5 Main Street.", "n": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (document,) = load(path)
    assert document.text == "Our office is at 5 Main Street."
    assert document.metadata == {"q": "Where is the office?", "n": 1}
    path.write_text('{"text": "fine"}\n{"text": broken}\n', encoding="utf-8")
    with pytest.raises(IngestError, match="line 2 is not valid JSON"):
        load(path)


def test_rows_keep_line_separators_inside_their_cells(tmp_path):
    """U+2028, U+0085 and form feeds inside a cell or a JSON string are written unquoted
    and raw (csv.writer, json.dumps(ensure_ascii=False)); they do not end a row."""
    import csv

    texts = ["Widget A\u2028deluxe edition", "Widget B\x0cspare parts\x85and tools"]
    path = tmp_path / "products.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "price"])
        writer.writerows([[text, 10 * (i + 1)] for i, text in enumerate(texts)])
    documents = load(path)
    flat = [" ".join(text.split()) for text in texts]  # cleaning makes them plain spaces
    assert [d.text for d in documents] == flat
    assert [(d.record, d.metadata) for d in documents] == [(1, {"price": 10}), (2, {"price": 20})]
    path = tmp_path / "products.jsonl"
    lines = [json.dumps({"text": text, "n": i}, ensure_ascii=False) for i, text in enumerate(texts)]
    path.write_bytes("\r\n".join(lines).encode("utf-8"))  # Windows line ends too
    assert [(d.text, d.metadata) for d in load(path)] == [(t, {"n": i}) for i, t in enumerate(flat)]


def test_latin1_text_is_decoded(tmp_path):
    path = tmp_path / "menu.txt"
    path.write_bytes("Le café crème coûte trois euros à Genève.\n".encode("latin-1"))
    (document,) = load(path)
    assert document.text == "Le café crème coûte trois euros à Genève."


def test_damaged_utf8_keeps_its_text(tmp_path):
    """A UTF-8 file cut mid-letter, or with one stray byte, is UTF-8 with a U+FFFD, not
    "binary content"; a Latin-1 file still goes to charset detection (above)."""
    japanese = "日本語のテキストです。検索できるように取り込みます。" * 10
    french = "Le café est près de la gare, à côté de la façade dorée. " * 10
    cases = {
        "cut.txt": japanese.encode() + "語".encode()[:2],
        "stray.txt": french[:200].encode() + b"\x80" + french[200:].encode(),
        "tail.txt": french.encode() + b"\xff",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        (document,) = load(path)
        assert document.metadata["encoding"] == "utf-8"
        assert document.text.count("\ufffd") == 1, name
        words = document.text.replace("\ufffd", "").split()
        assert words == data.decode("utf-8", "ignore").split(), name


def test_html_wrapper_named_like_chrome_is_still_the_page(tmp_path):
    path = tmp_path / "guide.html"
    path.write_text(
        "<html><head><title>Guide</title></head><body>"
        '<div class="site layout-has-sidebar"><nav>Home | About</nav>'
        '<div class="content"><h1>Install guide</h1><p>Run pip install foo first.</p>'
        "<p>Then configure it with the settings file.</p></div>"
        '<div class="sidebar">Popular links</div></div></body></html>',
        encoding="utf-8",
    )
    (document,) = load(path)
    assert "Run pip install foo first." in document.text and "settings file" in document.text
    assert "Popular links" not in document.text and "Home" not in document.text


def test_format_by_content_before_extension(tmp_path):
    pdf = geology_pdf(tmp_path / "report.txt")
    assert detect_format(pdf, pdf.read_bytes()) == "pdf"
    html = tmp_path / "page.md"
    html.write_text(HTML_PAGE, encoding="utf-8")
    assert detect_format(html, html.read_bytes()) == "html"
    assert detect_format(tmp_path / "notes", b'{"text": "a"}\n') == "jsonl"
    cases = [
        ("blob.txt", bytes(range(256)) * 4, "binary"),
        ("empty.md", b"", "empty"),
        ("fake.pdf", b"just words", "not a PDF"),
        ("archive.docx", b"PK\x03\x04broken", "damaged"),
    ]
    for name, data, reason in cases:
        with pytest.raises(IngestError, match=reason):
            detect_format(tmp_path / name, data)
