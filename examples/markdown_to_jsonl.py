"""Turn Markdown files into `{"id", "text", "source", "section"}` JSON lines, one per paragraph.

A stop-gap for the demo until `embedstack ingest` lands: it feeds the project's own docs to
`embedstack add`.

    python examples/markdown_to_jsonl.py README.md docs/*.md > docs.jsonl
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def paragraphs(path: Path):
    """Yield (position, section heading, text) for each prose paragraph (code blocks skipped)."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    section = path.stem
    for n, block in enumerate(re.split(r"\n\s*\n", text)):
        block = block.strip()
        if block.startswith("#"):
            heading, _, block = block.partition("\n")
            section = heading.lstrip("#").strip()
        if len(block.split()) >= 5:
            yield n, section, " ".join(block.split())


def main(files: list[str]) -> None:
    for name in files:
        path = Path(name)
        for n, section, text in paragraphs(path):
            record = {
                "id": f"{path.name}#{n}",
                "text": text,
                "source": path.name,
                "section": section,
            }
            print(json.dumps(record, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1:])
