"""Markdown with markdown-it-py (CommonMark + tables): headings become the heading path."""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from embedstack.ingest.documents import Block, Document
from embedstack.ingest.loaders.headings import HeadingTrail
from embedstack.ingest.loaders.text import decode_text

_FRONT_MATTER = re.compile(r"\A---\n.*?\n(?:---|\.\.\.)\n", re.S)
_PARSER = MarkdownIt("commonmark").enable("table")


def load_markdown(path: Path, data: bytes) -> list[Document]:
    text, encoding = decode_text(data)
    text = _FRONT_MATTER.sub("", text.replace("\r\n", "\n"))
    trail = HeadingTrail()
    blocks: list[Block] = []
    tokens = _PARSER.parse(text)
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if token.type == "heading_open":
            title = _inline_text(tokens[position + 1])
            trail.enter(int(token.tag[1]), title)
            blocks.append(Block(title, heading_path=trail.path, kind="heading"))
        elif token.type == "inline" and tokens[position - 1].type == "paragraph_open":
            blocks.append(Block(_inline_text(token), heading_path=trail.path))
        elif token.type in ("fence", "code_block"):
            blocks.append(Block(token.content, heading_path=trail.path, kind="code"))
        elif token.type == "table_open":
            rows, position = _table(tokens, position)
            blocks.append(Block("\n".join(rows), heading_path=trail.path, kind="table"))
        elif token.type == "html_block":
            blocks.append(Block(re.sub(r"<[^>]+>", " ", token.content), heading_path=trail.path))
        position += 1
    return [
        Document.from_blocks(path, "markdown", blocks, title=_title(blocks),
                             metadata={"encoding": encoding})
    ]  # fmt: skip


def _inline_text(inline: Token) -> str:
    """Readable text of an inline run: no emphasis markers, link text without its URL."""
    parts = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)  # alt text
    return "".join(parts)


def _table(tokens: list[Token], position: int) -> tuple[list[str], int]:
    rows: list[str] = []
    cells: list[str] = []
    while tokens[position].type != "table_close":
        token = tokens[position]
        if token.type == "inline":
            cells.append(_inline_text(token).strip())
        elif token.type == "tr_close":
            rows.append(" | ".join(cells))
            cells = []
        position += 1
    return rows, position


def _title(blocks: list[Block]) -> str:
    first_heading = next((b for b in blocks if b.kind == "heading"), None)
    return first_heading.text if first_heading and len(first_heading.heading_path) == 1 else ""
