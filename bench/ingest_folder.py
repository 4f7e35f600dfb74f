"""Ingest a folder of thousands of small files: files/s, chunks/s and peak memory.

    .venv/bin/python bench/ingest_folder.py [--files 2000] [--data ../shared/data/scifact]

Writes the first N SciFact documents (title + abstract) as one Markdown file each into a
temporary folder, then runs `embedstack ingest` on it in a child process, with the default
model and backend, and reports the child's wall time and peak RSS (the issue's bound: 2 GB).
A second run over the same folder shows the cost of finding every file unchanged.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_line

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "scifact"
EMBEDSTACK = Path(sys.executable).with_name("embedstack")


def write_folder(data: Path, folder: Path, n: int) -> int:
    """One Markdown file per document; returns the bytes written."""
    written = 0
    with (data / "corpus.jsonl").open(encoding="utf-8") as lines:
        for i, line in zip(range(n), lines, strict=False):
            doc = json.loads(line)
            text = f"# {doc.get('title', '').strip()}\n\n{doc['text'].strip()}\n"
            path = folder / f"{i // 500:02d}" / f"doc-{doc['_id']}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            written += path.write_text(text, encoding="utf-8")
    return written


def timed_ingest(kb: Path, folder: Path) -> tuple[float, float, dict]:
    """Seconds, peak RSS (MB) of the child and its JSON report."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(
        [str(EMBEDSTACK), "ingest", str(kb), str(folder), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        print("note: peak RSS not above an earlier child's; read it as a lower bound")
    return seconds, peak / 1024, json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        sys.exit(f"no SciFact corpus at {args.data}")
    print(cpu_line())
    with tempfile.TemporaryDirectory(prefix="ingest-folder-") as tmp:
        folder, kb = Path(tmp) / "docs", Path(tmp) / "kb"
        size = write_folder(args.data, folder, args.files)
        print(f"{args.files} files, {size / 1e6:.1f} MB of Markdown\n")
        print("| run | seconds | files/s | chunks | chunks/s | peak RSS MB |")
        print("|---|---|---|---|---|---|")
        for run in ("first ingest", "again, unchanged"):
            seconds, peak, report = timed_ingest(kb, folder)
            files = report["added"] + report["updated"] + report["unchanged"]
            chunks = report["chunks_added"]
            print(
                f"| {run} | {seconds:.1f} | {files / seconds:.1f} | {chunks} | "
                f"{chunks / seconds:.1f} | {peak:.0f} |"
            )
            if report["failed"]:
                print(f"failed: {report['files']['failed'][:3]}")


if __name__ == "__main__":
    main()
