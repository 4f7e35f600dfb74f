"""HTML: the main content (no navigation, headers, footers, scripts) with headings as structure.

BeautifulSoup with lxml. Boilerplate is removed by tag and ARIA role, and by class/id names that
sites use for chrome; when the page marks its content with <main> or <article>, only that is read.
"""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup, Tag

from embedstack.ingest.documents import Block, Document
from embedstack.ingest.loaders.headings import HeadingTrail
from embedstack.ingest.loaders.text import decode_text

_DROP_TAGS = [
    "script", "style", "noscript", "template", "svg", "canvas", "iframe", "form", "button",
    "nav", "header", "footer", "aside", "menu", "dialog",
]  # fmt: skip
_DROP_ROLES = re.compile(r"^(navigation|banner|contentinfo|search|complementary|menu)$", re.I)
_BOILERPLATE = re.compile(
    r"(^|[-_ ])(nav|navbar|menu|sidebar|footer|header|breadcrumbs?|cookie|banner|advert|ads|"
    r"share|social|related|skip-link)([-_ ]|$)",
    re.I,
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = ["p", "li", "pre", "blockquote", "dt", "dd", "figcaption", "table", *_HEADINGS]


def load_html(path: Path, data: bytes) -> list[Document]:
    text, encoding = decode_text(data)
    soup = BeautifulSoup(text, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    page_letters = len((soup.body or soup).get_text(" ", strip=True))
    for tag in soup.find_all(lambda tag: _is_boilerplate(tag, page_letters)):
        tag.decompose()
    root = _main_content(soup)
    blocks = list(_blocks(root)) if root is not None else []
    return [
        Document.from_blocks(path, "html", blocks, title=title, metadata={"encoding": encoding})
    ]


def _is_boilerplate(tag: Tag, page_letters: int) -> bool:
    """Chrome by ARIA role, or by a class or id name such as "sidebar", unless the element
    holds most of the page's text: a wrapper named "layout-has-sidebar" is the page."""
    if tag.name in ("html", "body", "main", "article"):
        return False
    if _DROP_ROLES.match(_attribute(tag, "role")):
        return True
    names = " ".join([_attribute(tag, "class"), _attribute(tag, "id")])
    if not names.strip() or not _BOILERPLATE.search(names):
        return False
    return 2 * len(tag.get_text(" ", strip=True)) <= page_letters


def _attribute(tag: Tag, name: str) -> str:
    """An attribute as one string (bs4 gives multi-valued ones such as class as a list)."""
    value = tag.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else " ".join(value)


def _main_content(soup: BeautifulSoup) -> Tag | None:
    candidates = soup.find_all(["main", "article"]) or [soup.body or soup]
    return max(candidates, key=lambda tag: len(tag.get_text(" ", strip=True)))


def _blocks(root: Tag):
    trail = HeadingTrail()
    elements = root.find_all(_BLOCKS)
    if not elements:
        yield Block(root.get_text("\n"))
        return
    for element in elements:
        if element.find_parent(_BLOCKS) is not None:
            continue  # nested (a <p> in an <li>, a table in a table): read with its parent
        if element.name in _HEADINGS:
            trail.enter(_HEADINGS[element.name], element.get_text(" ", strip=True))
            yield Block(element.get_text(" ", strip=True), heading_path=trail.path, kind="heading")
        elif element.name == "table":
            yield Block(_table_text(element), heading_path=trail.path, kind="table")
        elif element.name == "pre":
            yield Block(element.get_text(), heading_path=trail.path, kind="code")
        else:
            yield Block(element.get_text(" ", strip=True), heading_path=trail.path)


def _table_text(table: Tag) -> str:
    rows = []
    for row in table.find_all("tr"):
        cells = [cell.get_text(" ", strip=True) for cell in row.find_all(["th", "td"])]
        rows.append(" | ".join(cell for cell in cells if cell))
    return "\n".join(row for row in rows if row)
