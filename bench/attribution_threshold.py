"""Calibrate the support threshold of verified citations on the SEC 10-Q gold answers.

    .venv/bin/python bench/attribution_threshold.py [--collection /tmp/sec10q-kb]

For each of the 195 questions, the sources are what `ask` retrieves (k=5). Each sentence of
the question's gold answer whose numbers are all in those sources is a *true* statement about
them; the same-kind sentence of another question's gold answer (another
company, so its facts are not in these sources) is a *false* one. Per threshold, prints the
share of each that `attribute` calls supported (number and name checks included): the
threshold should pass most true sentences and few false ones.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np

from embedstack import Collection
from embedstack.rag.attribution import attribute, split_answer
from embedstack.rag.evidence import numbers, split_sources

SEC = Path("../shared/data/sec10q/sec-10-q/data/v1")
THRESHOLDS = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]  # "cosine alone": sentences with no number
_SOURCE_NOTE = re.compile(r"\(SOURCE:[^)]*\)|^[-*]\s*", re.IGNORECASE)


def gold_sentences(answer: str) -> list[str]:
    """The gold answer's sentences that state a number, without "(SOURCE: …)" notes."""
    out = []
    for text, _ in split_answer(_SOURCE_NOTE.sub("", answer)):
        if numbers(text) and not text.lower().startswith(("based on", "source")):
            out.append(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, default=Path("/tmp/sec10q-kb"))
    args = parser.parse_args()
    kb = Collection.open(args.collection)
    if not kb.sources():
        kb.ingest(SEC / "docs", show_progress=True)
    with open(SEC / "qna_data.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    model = kb._uncached_model()
    true_scores: list[tuple[float, bool]] = []
    false_scores: list[tuple[float, bool]] = []
    for number, row in enumerate(rows):
        sentences = split_sources(kb.search(row["Question"], k=5), model)
        source_numbers = numbers(" ".join(sentences.texts()))
        asked = numbers(row["Question"])
        true = [s for s in gold_sentences(row["Answer"])
                if numbers(s) - asked and numbers(s) - asked <= source_numbers][:2]  # fmt: skip
        company = row["Source Docs"].strip("*").split()[-1]
        others = rows[number + 1 :] + rows[:number]
        other = next(
            r for r in others if company not in r["Source Docs"] and gold_sentences(r["Answer"])
        )
        false = gold_sentences(other["Answer"])[:2]
        for group, texts in ((true_scores, true), (false_scores, false)):
            for text in texts:
                checked = attribute(text, row["Question"], sentences, model, -1.0, -1.0)
                # threshold -1 keeps only the number/name checks; the cosine is compared below
                group.extend((s.support, s.supported) for s in checked)
    kb.close()
    print(f"true sentences: {len(true_scores)} · false sentences: {len(false_scores)}")
    for name, group in (("true", true_scores), ("false", false_scores)):
        support = np.array([s for s, _ in group])
        quantiles = np.percentile(support, [5, 25, 50, 75, 95]).round(3).tolist()
        passing = np.mean([ok for _, ok in group])
        print(f"{name}: best cosine p5/p25/p50/p75/p95 {quantiles}; pass number+name checks "
              f"{passing:.1%}")  # fmt: skip
    print("\n| threshold | true supported | false supported | false with cosine alone |")
    print("|---|---|---|---|")
    for threshold in THRESHOLDS:
        rates = [np.mean([s >= threshold and ok for s, ok in group])
                 for group in (true_scores, false_scores)]  # fmt: skip
        alone = np.mean([s >= threshold for s, _ in false_scores])
        print(f"| {threshold:.2f} | {rates[0]:.1%} | {rates[1]:.1%} | {alone:.1%} |")


if __name__ == "__main__":
    main()
