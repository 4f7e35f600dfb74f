"""Fine-tune a model and score it before and after, on BEIR data (SciFact by default).

    .venv/bin/python bench/finetune.py --out /tmp/models/scifact-mnrl [--train DIR|FILE|KB]
        [--eval ../shared/data/scifact] [--hard-negatives 1] [--epochs 1] [--max-pairs N]
        [--pseudo title,ict] [--pipelines dense hybrid+builtin] [--json FILE]

`--train` defaults to the --eval folder (its qrels/train.tsv); a collection folder trains on
pseudo-queries from its chunks (no labels). `--unlabelled KB` first stores the --eval corpus in
the collection KB (abstracts as text, titles as metadata; reused when it exists) and trains on
its pseudo-queries: no query and no judgement is read. Every pipeline is scored for the base
model and the new one on the --eval test split, side by side on this machine. Prints one table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from machine import machine

from embedstack.evaluation.retrieval import evaluate_retrieval
from embedstack.models import load_model
from embedstack.training import FinetuneOptions, finetune

METRICS = ("ndcg@10", "recall@100", "mrr@10")


def corpus_collection(beir: Path, folder: Path, model: str) -> None:
    """The BEIR corpus as a user would store it: text, with the title as metadata."""
    from embedstack import Collection
    from embedstack.evaluation.files import jsonl_rows

    if folder.exists():
        return
    rows = [record for _, record in jsonl_rows(beir / "corpus.jsonl") if record.get("text")]
    with Collection.open(folder, model) as kb:
        kb.add(
            [r["text"] for r in rows],
            ids=[str(r["_id"]) for r in rows],
            metadata=[{"title": r.get("title") or ""} for r in rows],
            show_progress=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", default="all-MiniLM-L6-v2")
    parser.add_argument("--train", type=Path)
    parser.add_argument("--eval", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--loss", default="mnrl")
    parser.add_argument("--hard-negatives", type=int, default=1)
    parser.add_argument("--max-pairs", type=int)
    parser.add_argument("--pseudo", default="title,ict")
    parser.add_argument("--llm-limit", type=int, default=200)
    parser.add_argument("--pipelines", nargs="+", default=["dense", "hybrid+builtin"])
    parser.add_argument("--unlabelled", type=Path, help="collection to build from the corpus")
    parser.add_argument("--skip-base", action="store_true", help="score the new model only")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.unlabelled:
        corpus_collection(args.eval, args.unlabelled, args.base)
        args.train = args.unlabelled
    options = FinetuneOptions(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        loss=args.loss, hard_negatives=args.hard_negatives, max_pairs=args.max_pairs,
        pseudo_sources=tuple(args.pseudo.split(",")), llm_limit=args.llm_limit,
    )  # fmt: skip
    llm = None
    if "llm" in options.pseudo_sources:
        from embedstack.rag.loader import load_llm

        def llm():  # noqa: E306
            return load_llm("smollm2")

    report = finetune(args.base, args.train or args.eval, args.out, options, llm=llm,
                      show_progress=True)  # fmt: skip
    rows = []
    for pipeline in args.pipelines:
        mode, _, rerank = pipeline.partition("+")
        for name in (str(args.out),) if args.skip_base else (args.base, str(args.out)):
            result = evaluate_retrieval(args.eval, load_model(name), mode=mode,
                                        rerank=rerank or None)  # fmt: skip
            rows.append({"pipeline": pipeline, "model": name,
                         **{m: round(result[m], 5) for m in METRICS}})  # fmt: skip
    summary = {"machine": machine(), "report": report.to_dict(), "rows": rows}
    print(json.dumps(summary["machine"]))
    print(f"pairs {report.pairs}, steps {report.steps}, {report.seconds:.0f} s training")
    print(f"| pipeline | model | {' | '.join(METRICS)} |")
    print("|---|---|" + "---|" * len(METRICS))
    for row in rows:
        print(f"| {row['pipeline']} | {row['model']} | "
              + " | ".join(f"{row[m]:.5f}" for m in METRICS) + " |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
