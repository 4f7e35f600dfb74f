"""Every installed catalog model ranked on SciFact: quality, speed, vector size and memory.

    .venv/bin/python bench/leaderboard.py [--data ../shared/data/scifact] [--models a,b,c]
        [--mode dense] [--sts ../shared/data/stsbenchmark] [--classification DIR]
        [--max-docs N] [--json FILE]

Runs `embedstack.evaluation.leaderboard.leaderboard` (what `embedstack eval leaderboard` runs):
each model in a fresh process, dense retrieval by default. Prints a header (CPU, SIMD flags,
date, versions, embedstack commit, from bench/analysis.py) and one Markdown table. Run it on a
quiet machine: docs/s, query ms and memory are measured on whatever else is running.
`--max-docs` subsamples the corpus (every judged document kept) for a quick check.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from analysis import versions
from machine import machine

from embedstack.evaluation.leaderboard import Leaderboard, leaderboard

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "scifact"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--models", default=None, help="default: every installed catalog model")
    parser.add_argument("--split", default="test")
    parser.add_argument("--mode", default="dense")
    parser.add_argument("--sts", type=Path, default=None)
    parser.add_argument("--classification", type=Path, default=None)
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args()


def print_header(info: dict, found: dict) -> None:
    print(f"CPU: {info['cpu']} · {info['cores']} cores · SIMD: {' '.join(info['simd']) or 'none'}")
    print(f"{info['date']} · Python {info['python']} · " + " · ".join(
        f"{k} {v}" for k, v in found.items() if k != "embedstack" and v))  # fmt: skip
    print(f"embedstack: {found['embedstack']}")


def print_markdown(board: Leaderboard, seconds: float) -> None:
    """The table as Markdown (for docs/benchmarks.md), the best model in bold."""
    print(f"\n## {board.title()}\n")
    headers = [header for header, _, _ in board.columns()]
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row, cells in zip(board.rows, board.cells(), strict=True):
        if row is board.best:
            cells = [f"**{cell}**" for cell in cells]
        print("| " + " | ".join(cells) + " |")
    print(
        "\nmemory: peak RSS increase while the model loads and embeds, each model in a fresh "
        "process · query ms: median time to embed one query (one per call, no index search) · "
        "docs/s: corpus embedded and stored in batches"
    )
    for note in board.notes:
        print(note)
    print(f"Total: {seconds:.0f} s")


def main() -> None:
    args = parse_args()
    info, found = machine(), versions()
    print_header(info, found)
    started = time.perf_counter()
    board = leaderboard(
        args.data, args.models, split=args.split, mode=args.mode, sts=args.sts,
        classification=args.classification, max_docs=args.max_docs,
        batch_size=args.batch_size, show_progress=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    print_markdown(board, seconds)
    if args.json:
        result = {"machine": info, "versions": found, "title": board.title(),
                  "notes": board.notes, "seconds": seconds, "rows": board.to_dicts()}  # fmt: skip
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":  # required: each model runs in a spawned process that imports this
    main()
