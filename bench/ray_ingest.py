"""Plain ingest against ingest through a local Ray cluster: speed, and the same chunks and vectors.

    .venv/bin/python bench/ray_ingest.py [--sec DIR] [--scifact FILE] [--scifact-docs N]
        [--shards N] [--cpus N]

Corpora: the 20 SEC 10-Q PDFs, and SciFact's corpus.jsonl (5,183 rows; `--scifact-docs N`
takes its first N rows) cut into `--shards` JSONL files (default 8), since Ray spreads the work
file by file (one file is parsed and embedded by one actor). Each is ingested into a fresh
collection without Ray, then into another through one local Ray cluster (started once; its
start-up is timed apart). The embedding cache is off in both, so both embed every chunk.
"same chunks" compares ids, texts and metadata; cosine is between the two vectors of an id.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_line  # noqa: E402

from embedstack import Collection  # noqa: E402
from embedstack.ingest.distributed import ray_cluster  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def ingest(folder: Path, source: Path, ray: str | None) -> tuple[float, int, Collection]:
    kb = Collection.open(folder, cache_size=0)
    kb.model.encode(["warm up"])  # loading the model is not ingest time
    started = time.perf_counter()
    report = kb.ingest(source, ray=ray)
    seconds = time.perf_counter() - started
    if report.failed:
        raise SystemExit(f"{source}: {report.failed[:3]}")
    return seconds, len(report.added), kb


def compare(plain: Collection, ray: Collection) -> tuple[bool, float, float]:
    ids = sorted(plain.ids())
    same = ids == sorted(ray.ids()) and [(c.text, c.metadata) for c in plain.get(ids)] == [
        (c.text, c.metadata) for c in ray.get(ids)
    ]
    cosines = np.sum(plain._store.vectors(ids) * ray._store.vectors(ids), axis=1)
    return same, float(cosines.min()), float(cosines.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sec", type=Path, default=DATA / "sec10q/sec-10-q/data/v1/docs")
    parser.add_argument("--scifact", type=Path, default=DATA / "scifact/corpus.jsonl")
    parser.add_argument("--scifact-docs", type=int, default=None, help="first N rows only")
    parser.add_argument("--shards", type=int, default=8, help="SciFact JSONL files")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the local cluster")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        with open(args.scifact, encoding="utf-8") as source:
            lines = source.readlines()[: args.scifact_docs]
        scifact = scratch / "scifact"
        scifact.mkdir()
        for shard in range(args.shards):
            text = "".join(lines[shard :: args.shards])
            (scifact / f"corpus-{shard}.jsonl").write_text(text, encoding="utf-8")
        corpora = [("SEC 10-Q PDFs", args.sec), (f"SciFact, {len(lines)} docs", scifact)]
        plain = {}
        for name, source in corpora:
            plain[name] = ingest(scratch / f"plain-{len(plain)}", source, None)
            print(f"plain {name}: {plain[name][0]:.1f} s", flush=True)
        started = time.perf_counter()
        with ray_cluster("local", num_cpus=args.cpus):
            start_seconds = time.perf_counter() - started
            for i, (name, source) in enumerate(corpora):
                seconds, files, kb = ingest(scratch / f"ray-{i}", source, "local")
                plain_seconds, _, plain_kb = plain[name]
                chunks = kb.count()
                same, low, mean = compare(plain_kb, kb)
                docs = len(lines) if name.startswith("SciFact") else files
                rows.append((name, files, chunks, plain_seconds, seconds, docs, same, low, mean))
                print(f"ray {name}: {seconds:.1f} s", flush=True)
                kb.close()
                plain_kb.close()
    print()
    print(cpu_line())
    print(f"Ray local cluster start: {start_seconds:.1f} s (not in the times below)")
    print()
    print("| corpus | files | chunks | plain s | plain docs/s | Ray s | Ray docs/s | "
          "same chunks | cosine min / mean |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for name, files, chunks, plain_s, ray_s, docs, same, low, mean in rows:
        print(
            f"| {name} | {files} | {chunks} | {plain_s:.1f} | {docs / plain_s:.1f} | "
            f"{ray_s:.1f} | {docs / ray_s:.1f} | {'yes' if same else 'NO'} | "
            f"{low:.5f} / {mean:.5f} |"
        )


if __name__ == "__main__":
    main()
