"""Ingest the 20 SEC 10-Q PDFs, re-ingest them, and check retrieval for the 195 questions.

    .venv/bin/python bench/sec10q_ingest.py [--data ../shared/data/sec10q/sec-10-q/data/v1]
        [--k 5] [--chunk-tokens N] [--overlap N] [--no-context]

A question counts as a hit (per search mode) when one of its top-k chunks comes from a file
that its `Source Docs` glob names (a retrieval check, not an answer check). Prints one table;
paste it into docs/benchmarks.md with the date, machine and command.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import platform
import tempfile
import time
from pathlib import Path

from embedstack import Collection

MODES = ("dense", "keyword", "hybrid")


def load_questions(data: Path) -> list[tuple[str, str]]:
    with open(data / "qna_data.csv", encoding="utf-8-sig", newline="") as handle:
        return [(row["Question"], row["Source Docs"]) for row in csv.DictReader(handle)]


def hit_rate(kb: Collection, questions: list[tuple[str, str]], k: int, mode: str) -> float:
    results = kb.search_batch([q for q, _ in questions], k=k, mode=mode)
    hits = sum(
        any(fnmatch.fnmatch(hit.metadata["file_name"], glob) for hit in found)
        for (_, glob), found in zip(questions, results, strict=True)
    )
    return hits / len(questions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sec10q/sec-10-q/data/v1"))
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--chunk-tokens", type=int, default=None)
    parser.add_argument("--overlap", type=int, default=0)
    parser.add_argument("--no-context", action="store_true")
    args = parser.parse_args()
    options = dict(
        chunk_tokens=args.chunk_tokens, overlap=args.overlap, contextual=not args.no_context
    )
    questions = load_questions(args.data)
    with tempfile.TemporaryDirectory() as scratch:
        kb = Collection.open(Path(scratch) / "kb")
        kb.model.encode(["warm up"])
        started = time.perf_counter()
        first = kb.ingest(args.data / "docs", show_progress=True, **options)
        first_seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = kb.ingest(args.data / "docs", **options)
        again_seconds = time.perf_counter() - started
        pages = {(h["source"], h["page"]) for h in (c.metadata for c in kb.get(kb.ids()))}
        rates = {mode: hit_rate(kb, questions, args.k, mode) for mode in MODES}
        rows = [
            ("files ingested", f"{len(first.added)} of {len(first.added) + len(first.failed)}"),
            ("chunks", f"{first.chunks_added:,} (pages with chunks: {len(pages):,})"),
            ("first ingest", f"{first_seconds:.1f} s"),
            ("re-ingest (unchanged)", f"{again_seconds:.2f} s, {again.chunks_added} chunks "
             f"embedded, {again_seconds / first_seconds:.1%} of the first run"),
        ]  # fmt: skip
        rows += [
            (f"questions with a gold-document chunk in top {args.k} ({mode})",
             f"{rate:.1%} of {len(questions)}")
            for mode, rate in rates.items()
        ]  # fmt: skip
        kb.close()
    print(f"SEC 10-Q ingest ({platform.processor() or platform.machine()}, options {options})")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
