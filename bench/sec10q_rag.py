"""Answers with citations on the SEC 10-Q questions, side by side per answer mode.

    .venv/bin/python bench/sec10q_rag.py [--modes extractive,generative,auto]
        [--llm smollm2 | --llm openai:NAME --base-url URL] [--collection /tmp/sec10q-kb]
        [--limit N] [--k 5] [--details answers.jsonl]

The collection is built once with `Collection.ingest` (reused when it exists). For each question
and mode:
- gold document cited: a cited source is a file the question's `Source Docs` glob names;
- gold document in sources: the same, for any source the answer drew on;
- valid citations: every citation points to one of the answer's sources (must be 100%);
- gold number: for gold answers with a number, the answer contains one of those numbers;
- empty answers, answers with an unsupported sentence, LLM answers kept (not fallen back);
- seconds per answer (retrieval, evidence, generation and checks).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import platform
import re
import statistics
import time
from pathlib import Path

from embedstack import Collection

DATA = Path("../shared/data/sec10q/sec-10-q/data/v1")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> set[str]:
    """Numbers of 2+ digits with separators removed ("82,959" -> "82959"); years included."""
    found = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}
    return {n for n in found if len(n.replace(".", "")) >= 2}


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def run(kb: Collection, rows: list[dict], mode: str, args: argparse.Namespace) -> dict[str, str]:
    tally = dict.fromkeys(["cited", "sourced", "valid", "number", "empty", "unsupported",
                           "generative", "answered"], 0)  # fmt: skip
    with_number, seconds = 0, []
    for number, row in enumerate(rows, start=1):
        started = time.perf_counter()
        answer = kb.ask(row["Question"], k=args.k, llm=args.llm, base_url=args.base_url,
                        mode=mode)  # fmt: skip
        seconds.append(time.perf_counter() - started)
        glob = row["Source Docs"]
        names = {c.chunk_id: Path(c.source).name for c in answer.sources}
        cited = any(fnmatch.fnmatch(names[c.chunk_id], glob) for c in answer.citations)
        tally["cited"] += cited
        tally["sourced"] += any(fnmatch.fnmatch(name, glob) for name in names.values())
        tally["valid"] += all(c.chunk_id in names for c in answer.citations)
        tally["answered"] += answer.grounded
        tally["empty"] += not answer.text.strip()
        tally["unsupported"] += bool(answer.unsupported)
        tally["generative"] += answer.mode == "generative"
        gold = numbers(row["Answer"])
        if gold:
            with_number += 1
            tally["number"] += bool(gold & numbers(answer.text))
        if args.details:
            with open(args.details, "a", encoding="utf-8") as out:
                out.write(json.dumps({
                    "mode": mode, "question": number, "answered_by": answer.mode,
                    "gold_cited": cited, "gold_number": bool(gold & numbers(answer.text)) if gold
                    else None, "seconds": round(seconds[-1], 3), "text": answer.text,
                    "llm_text": answer.raw_text, "fallback": answer.fallback,
                }) + "\n")  # fmt: skip
        print(f"{mode[:4]} {number:3d} {seconds[-1]:5.1f}s {answer.mode[:3]} "
              f"{answer.text[:90]!r}", flush=True)  # fmt: skip
    n = len(rows)
    return {
        "gold document among cited sources": f"{tally['cited'] / n:.1%}",
        "gold document among the answer's sources": f"{tally['sourced'] / n:.1%}",
        "answers whose citations all point to their sources": f"{tally['valid'] / n:.1%}",
        "answers with a gold number that contain it":
            f"{tally['number']}/{with_number} = {tally['number'] / max(with_number, 1):.1%}",
        "answered (not 'the documents do not say')": f"{tally['answered'] / n:.1%}",
        "empty answers": str(tally["empty"]),
        "answers with an unsupported sentence": str(tally["unsupported"]),
        "answers written by the LLM (kept after checks)": f"{tally['generative'] / n:.1%}",
        "seconds per answer (mean / median)":
            f"{statistics.mean(seconds):.2f} / {statistics.median(seconds):.2f}",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="extractive,auto,generative")
    parser.add_argument("--llm", default="smollm2")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--collection", type=Path, default=Path("/tmp/sec10q-kb"))
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--details", type=Path, help="append one JSON line per answer here")
    args = parser.parse_args()
    kb = Collection.open(args.collection)
    if not kb.sources():
        kb.ingest(DATA / "docs", show_progress=True)
    with open(DATA / "qna_data.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))[: args.limit or None]
    modes = args.modes.split(",")
    kb.ask(rows[0]["Question"], llm=args.llm, base_url=args.base_url)  # load the models first
    results: dict[str, dict[str, str]] = {}
    for mode in modes:  # the table so far after each mode: a long run can be read as it goes
        results[mode] = run(kb, rows, mode, args)
        done = list(results)
        print(f"\nSEC 10-Q RAG · llm {args.llm} · {len(rows)} questions · k={args.k} · {cpu()}")
        print("| measure | " + " | ".join(done) + " |")
        print("|---|" + "---|" * len(done))
        for measure in results[done[0]]:
            print(f"| {measure} | " + " | ".join(results[m][measure] for m in done) + " |")
    kb.close()


if __name__ == "__main__":
    main()
