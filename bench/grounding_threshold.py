"""Calibrate `ask`'s no-evidence threshold: best-chunk cosine for on- and off-topic questions.

    .venv/bin/python bench/grounding_threshold.py [--collection /tmp/sec10q-kb]

On the SEC 10-Q collection (built like bench/sec10q_rag.py), compares the best dense cosine of
the 195 real questions with that of off-topic questions (SciFact test queries and STS-B
sentences, which no 10-Q answers). Prints quantiles and, per threshold, the share of each group
that would reach the LLM.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from embedstack import Collection
from embedstack.evaluation import load_beir

DATA = Path("../shared/data")
SEC = DATA / "sec10q/sec-10-q/data/v1"


def best_cosines(kb: Collection, questions: list[str]) -> np.ndarray:
    hits = kb.search_batch(questions, k=1, mode="dense")
    return np.array([row[0].score for row in hits])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, default=Path("/tmp/sec10q-kb"))
    args = parser.parse_args()
    kb = Collection.open(args.collection)
    if not kb.sources():
        kb.ingest(SEC / "docs", show_progress=True)
    with open(SEC / "qna_data.csv", encoding="utf-8-sig", newline="") as handle:
        on_topic = [row["Question"] for row in csv.DictReader(handle)]
    off_topic = list(load_beir(DATA / "scifact").queries.values())[:200]
    sts = sorted((DATA / "stsbenchmark").glob("*test*"))[0].read_text().splitlines()
    off_topic += [line.split("\t")[5] for line in sts[:200] if len(line.split("\t")) > 5]
    groups = {"SEC questions": best_cosines(kb, on_topic),
              "off-topic": best_cosines(kb, off_topic)}  # fmt: skip
    print("| group | n | p5 | p25 | p50 | p75 | p95 |\n|---|---|---|---|---|---|---|")
    for name, values in groups.items():
        quantiles = np.percentile(values, [5, 25, 50, 75, 95])
        print(f"| {name} | {len(values)} | " + " | ".join(f"{q:.3f}" for q in quantiles) + " |")
    print("\n| threshold | SEC questions answered | off-topic answered |\n|---|---|---|")
    for threshold in (0.15, 0.2, 0.25, 0.3, 0.35, 0.4):
        on, off = (float((v >= threshold).mean()) for v in groups.values())
        print(f"| {threshold:.2f} | {on:.1%} | {off:.1%} |")
    kb.close()


if __name__ == "__main__":
    main()
