"""Answers with citations on the SEC 10-Q questions: citation hit rate, validity, numbers, speed.

    .venv/bin/python bench/sec10q_rag.py [--llm smollm2 | --llm openai:NAME --base-url URL]
        [--collection /tmp/sec10q-kb] [--limit N] [--k 5]

The collection is built once with `Collection.ingest` (reused when it exists). For each question:
- cited hit: a cited chunk comes from a file the question's `Source Docs` glob names;
- prompt hit: the same, for any chunk in the prompt;
- valid citations: every citation points to a chunk that was in the prompt (must be 100%);
- number found: for gold answers with a number, the answer contains one of those numbers;
- seconds per answer (retrieval + generation).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import re
import time
from pathlib import Path

from embedstack import Collection

DATA = Path("../shared/data/sec10q/sec-10-q/data/v1")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> set[str]:
    """Numbers of 2+ digits with separators removed ("82,959" -> "82959"); years included."""
    found = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}
    return {n for n in found if len(n.replace(".", "")) >= 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="smollm2")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--collection", type=Path, default=Path("/tmp/sec10q-kb"))
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    kb = Collection.open(args.collection)
    if not kb.sources():
        kb.ingest(DATA / "docs", show_progress=True)
    with open(DATA / "qna_data.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))[: args.limit or None]
    cited_hits = prompt_hits = valid = with_number = number_found = grounded = empty = 0
    seconds = []
    for number, row in enumerate(rows, start=1):
        started = time.perf_counter()
        answer = kb.ask(row["Question"], k=args.k, llm=args.llm, base_url=args.base_url)
        seconds.append(time.perf_counter() - started)
        glob = row["Source Docs"]
        names = {c.chunk_id: Path(c.source).name for c in answer.sources}
        cited_hits += any(fnmatch.fnmatch(names[c.chunk_id], glob) for c in answer.citations)
        prompt_hits += any(fnmatch.fnmatch(name, glob) for name in names.values())
        valid += all(c.chunk_id in names for c in answer.citations)
        grounded += answer.grounded
        empty += not answer.text.strip()
        gold = numbers(row["Answer"])
        if gold:
            with_number += 1
            number_found += bool(gold & numbers(answer.text))
        print(f"{number:3d} {seconds[-1]:5.1f}s {answer.text[:100]!r}", flush=True)
    n = len(rows)
    kb.close()
    print(f"\nSEC 10-Q RAG · llm {args.llm} · {n} questions · k={args.k}")
    print("| measure | value |\n|---|---|")
    print(f"| gold document among cited chunks | {cited_hits / n:.1%} |")
    print(f"| gold document among prompt chunks | {prompt_hits / n:.1%} |")
    print(f"| answers whose citations all point to prompt chunks | {valid / n:.1%} |")
    print(f"| answers with a gold number that contain it | {number_found}/{with_number} "
          f"= {number_found / max(with_number, 1):.1%} |")  # fmt: skip
    print(f"| answered (not 'the documents do not say') | {grounded / n:.1%} |")
    print(f"| empty answers | {empty} |")
    print(f"| seconds per answer (mean) | {sum(seconds) / n:.1f} |")


if __name__ == "__main__":
    main()
