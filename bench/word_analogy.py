"""Word analogies (Google's questions-words.txt): GloVe and word vectors trained on 20 Newsgroups
(issue 17).

    PYTHONPATH=src .venv/bin/python bench/word_analogy.py [--limit N] [--workers 2] [--json FILE]

Heavy (~10 minutes on 2 cores); wrap it in `flock /tmp/heavy.lock ...` where jobs share a machine.

Questions: gensim's copy of questions-words.txt (19,544 questions in 14 sections; the first 5
are semantic, the `gram*` ones syntactic). Scoring is gensim's `evaluate_word_analogies`:
lower-cased, only the 300,000 most frequent words are candidates (`restrict_vocab`), a question
with any word outside them is skipped, the answer is the nearest word to b - a + c with the
three inputs excluded. embedstack's side asks `model.analogy(a, b, c, restrict_vocab=300000)`
one question at a time; gensim's side runs `evaluate_word_analogies` on the same vectors.

Trained models: word2vec and FastText (gensim, through `train_word_vectors`) on the `text` of
all 18,846 posts of ../shared/data/20newsgroups/20news-bydate.jsonl.gz (headers, quotes and
signatures included), 100-d, 5 epochs, min_count 5, window 5, streamed from the file on every
pass. `--limit N` trains on the first N posts (a quick run). Without the data the script says
so and exits 0.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from machine import machine

ROOT = Path(__file__).resolve().parents[1]
NEWSGROUPS = Path(
    os.environ.get(
        "NEWSGROUPS_JSONL",
        ROOT / ".." / "shared" / "data" / "20newsgroups" / "20news-bydate.jsonl.gz",
    )
)
RESTRICT = 300_000
JARGON = ("nhl", "windows", "encryption", "gun")
# Misspellings: only FastText can place them (those the corpus happens to hold are skipped).
UNSEEN = ("encrpytion", "goaltendr", "hocky", "microsfot")


def questions() -> list[tuple[str, tuple[str, str, str, str]]]:
    from gensim.test.utils import datapath

    out, section = [], ""
    for line in Path(datapath("questions-words.txt")).read_text().splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif line.strip():
            a, b, c, d = line.lower().split()
            out.append((section, (a, b, c, d)))
    return out


def summary(correct: dict[str, int], asked: dict[str, int], total: int) -> dict:
    def share(keys: list[str]) -> float:
        n = sum(asked[k] for k in keys)
        return sum(correct[k] for k in keys) / n if n else float("nan")

    semantic = [s for s in asked if not s.startswith("gram")]
    syntactic = [s for s in asked if s.startswith("gram")]
    return {
        "semantic": share(semantic),
        "syntactic": share(syntactic),
        "total": share(semantic + syntactic),
        "answered": sum(asked.values()),
        "questions": total,
    }


def embedstack_accuracy(model, items) -> tuple[dict, float]:
    """gensim's rules, asked through embedstack's public `analogy`."""
    known = set(model.words[:RESTRICT])
    correct: dict[str, int] = defaultdict(int)
    asked: dict[str, int] = defaultdict(int)
    started = time.perf_counter()
    for section, (a, b, c, d) in items:
        if not {a, b, c, d} <= known:
            continue
        asked[section] += 1
        correct[section] += model.analogy(a, b, c, k=1, restrict_vocab=RESTRICT)[0][0] == d
    return summary(correct, asked, len(items)), time.perf_counter() - started


def gensim_accuracy(words: list[str], vectors: np.ndarray, total: int) -> tuple[dict, float]:
    from gensim.models import KeyedVectors
    from gensim.test.utils import datapath

    keyed = KeyedVectors(vectors.shape[1])
    keyed.add_vectors(words, vectors)
    started = time.perf_counter()
    _, sections = keyed.evaluate_word_analogies(datapath("questions-words.txt"))
    seconds = time.perf_counter() - started
    correct = {
        s["section"]: len(s["correct"]) for s in sections if s["section"] != "Total accuracy"
    }
    asked = {
        s["section"]: len(s["correct"]) + len(s["incorrect"])
        for s in sections
        if s["section"] != "Total accuracy"
    }
    return summary(defaultdict(int, correct), defaultdict(int, asked), total), seconds


def record(rows: list[dict], row: dict) -> None:
    """Keep a result and show it at once (a long run's early rows survive a later failure)."""
    rows.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)


def posts(limit: int | None) -> Iterator[str]:
    with gzip.open(NEWSGROUPS, "rt", encoding="utf-8") as handle:
        for n, line in enumerate(handle):
            if limit is not None and n >= limit:
                return
            yield json.loads(line)["text"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-glove", action="store_true", help="only the trained models")
    args = parser.parse_args()

    from embedstack import load_model
    from embedstack.models.word_training import train_word_vectors

    info = machine()
    print(f"CPU: {info['cpu']} ({info['cores']} cores; SIMD {' '.join(info['simd'])})")
    items = questions()
    rows: list[dict] = []
    neighbours: dict[str, dict[str, list[str]]] = {}

    if not args.skip_glove:
        glove = load_model("glove-6b-50d")
        ours, seconds = embedstack_accuracy(glove, items)
        record(rows, {"model": "GloVe 6B 50-d", "scorer": "embedstack", **ours, "eval_s": seconds})
        theirs, seconds = gensim_accuracy(glove.words, glove.unit_vectors, len(items))
        record(rows, {"model": "GloVe 6B 50-d", "scorer": "gensim", **theirs, "eval_s": seconds})
        neighbours["GloVe 6B 50-d"] = {
            w: [x for x, _ in glove.most_similar(w, k=8)] for w in JARGON if w in glove
        }
        del glove

    if not NEWSGROUPS.is_file():
        print(f"no 20 Newsgroups file at {NEWSGROUPS}: trained models skipped")
    else:
        with tempfile.TemporaryDirectory() as scratch:
            for algorithm in ("word2vec", "fasttext"):
                report = train_word_vectors(
                    lambda: posts(args.limit),
                    Path(scratch) / algorithm,
                    algorithm=algorithm,
                    dim=100,
                    epochs=5,
                    min_count=5,
                    window=5,
                    workers=args.workers,
                    corpus=str(NEWSGROUPS.name),
                    show_progress=sys.stderr.isatty(),
                )
                m = report.manifest
                model = load_model(report.path)
                ours, seconds = embedstack_accuracy(model, items)
                name = f"{algorithm} 20NG 100-d"
                trained = {
                    "train_s": m.train_seconds,
                    "words_per_s": m.words_per_second,
                    "vocab": m.vocab_size,
                    "corpus_words": m.corpus_words,
                }
                record(
                    rows,
                    {"model": name, "scorer": "embedstack", **ours, "eval_s": seconds, **trained},
                )
                theirs, seconds = gensim_accuracy(model.words, model.unit_vectors, len(items))
                record(
                    rows,
                    {"model": name, "scorer": "gensim", **theirs, "eval_s": seconds, **trained},
                )
                neighbours[name] = {
                    w: [x for x, _ in model.most_similar(w, k=8)] for w in JARGON if w in model
                }
                if algorithm == "fasttext":
                    for word in (w for w in UNSEEN if w not in model):
                        neighbours[name][word + " (unseen)"] = [
                            x for x, _ in model.most_similar(word, k=8)
                        ]

    print("| model | scorer | semantic | syntactic | total | answered | train s | words/s | vocab "
          "| eval s |")  # fmt: skip
    print("|" + "---|" * 10)
    for r in rows:
        print(
            f"| {r['model']} | {r['scorer']} | {r['semantic']:.1%} | {r['syntactic']:.1%} | "
            f"{r['total']:.1%} | {r['answered']:,} / {r['questions']:,} | "
            f"{r.get('train_s', float('nan')):.1f} | {r.get('words_per_s', 0):,.0f} | "
            f"{r.get('vocab', 0):,} | {r['eval_s']:.1f} |"
        )
    for name, lists in neighbours.items():
        print(f"\nnearest words, {name}:")
        for word, similar in lists.items():
            print(f"  {word}: {', '.join(similar)}")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "rows": rows, "neighbours": neighbours}, indent=2)
        )


if __name__ == "__main__":
    main()
