"""`finetune`: sentence-transformers' trainer around a product: pairs from any source, hard
negatives mined with a margin, honest before/after numbers, a model folder every part of
embedstack loads, and a Ctrl-C that keeps the last checkpoint.

We do not write a training loop: `SentenceTransformerTrainer` is the well-kept one. What is
ours is the glue a user would otherwise write by hand (and get wrong): duplicate-free batches,
false-negative margins, atomic output, provenance.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.util import find_spec as find_module
from pathlib import Path
from typing import Any

from embedstack.errors import InvalidInputError, ModelLoadError, ModelNotFoundError
from embedstack.models import load_model
from embedstack.models.catalog import find_spec
from embedstack.models.sbert_folder import read_sbert_folder
from embedstack.models.transformer_backend import hidden_size
from embedstack.rag.llm import ChatModel
from embedstack.training.options import FinetuneOptions
from embedstack.training.pairs import (
    TrainingPair,
    check_enough_pairs,
    pairs_kind,
    read_beir_pairs,
    read_pairs_jsonl,
    sample,
)

TRAINING_FILE = "embedstack_training.json"  # provenance, written into the model folder


@dataclass
class FinetuneReport:
    model: str  # the new model folder
    base: str
    train: str
    pairs: dict[str, int]  # by source: labelled, title, ict, llm
    trained_pairs: int  # pairs the trainer saw: mining drops those it finds no negative for
    steps: int
    seconds: float
    options: dict[str, Any]
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    before: dict[str, Any] | None = None  # eval metrics of the base model
    after: dict[str, Any] | None = None
    mlflow_run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def base_model_folder(base: str) -> Path:
    """The sentence-transformers folder of a catalog transformer or of a path; others fail."""
    path = Path(base).expanduser()
    if path.is_dir():
        read_sbert_folder(path)  # says what is wrong with a folder that is not a model
        return path
    spec = find_spec(base)
    if "torch" not in spec.backends or spec.onnx_only:
        trainable = "all-MiniLM-L6-v2, all-mpnet-base-v2 or a sentence-transformers folder"
        raise ModelNotFoundError(
            f"{spec.name} cannot be fine-tuned: it is not a transformer with PyTorch weights "
            f"(fine-tune {trainable})"
        )
    return spec.locate()


def load_pairs(
    train: Path,
    options: FinetuneOptions,
    llm: Callable[[], ChatModel] | None,
    show_progress: bool,
) -> tuple[list[TrainingPair], list[str]]:
    """The training pairs, and the texts hard negatives are mined from."""
    kind = pairs_kind(train)
    if kind == "jsonl":
        pairs = read_pairs_jsonl(train)
        corpus = sorted({p.positive for p in pairs} | {p.negative for p in pairs if p.negative})
    elif kind == "beir":
        pairs, corpus = read_beir_pairs(train)
    else:
        from embedstack.collection import Collection
        from embedstack.training.pseudo_queries import collection_chunks, pseudo_pairs

        with Collection.open(train, create=False) as collection:
            chunks = collection_chunks(collection)
        pairs = pseudo_pairs(
            chunks, options.pseudo_sources, llm=llm, llm_limit=options.llm_limit,
            seed=options.seed, show_progress=show_progress,
        )  # fmt: skip
        corpus = [chunk.text for chunk in chunks]
    return sample(pairs, options.max_pairs, options.seed), corpus


def check_output(out: Path) -> None:
    if out.exists():
        raise InvalidInputError(
            f"{out} already exists: give a new folder (a fine-tune never overwrites a model)"
        )


def finetune(
    base: str,
    train: str | Path,
    out: str | Path,
    options: FinetuneOptions | None = None,
    *,
    eval_data: str | Path | None = None,
    eval_split: str = "test",
    llm: Callable[[], ChatModel] | None = None,
    mlflow: str | bool = False,
    callbacks: Sequence[Any] = (),
    show_progress: bool = False,
) -> FinetuneReport:
    """Fine-tune `base` on `train` (pairs JSONL, BEIR folder, or a collection) into `out`.

    With `eval_data` (a BEIR folder), the base and the new model are scored on its
    `eval_split` before and after, through embedstack's own encoder (what search will use).
    `mlflow`: False, True (`sqlite:///mlflow.db` in the working folder) or a tracking URI.
    `callbacks`: extra `transformers.TrainerCallback`s. Ctrl-C raises `FinetuneInterrupted`
    after the last checkpoint is saved as the model in `out`.
    """
    options = options or FinetuneOptions()
    out, train = Path(out).expanduser(), Path(train).expanduser()
    base_folder = base_model_folder(base)
    options.check(hidden_size(read_sbert_folder(base_folder)))
    require_trainer()
    if mlflow is not False:
        from embedstack.tracking import require_mlflow

        require_mlflow()
    check_output(out)
    if eval_data is not None:
        from embedstack.evaluation.beir import load_beir

        load_beir(eval_data, eval_split)  # a broken eval set fails before hours of training
    pairs, corpus = load_pairs(train, options, llm, show_progress)
    check_enough_pairs(len(pairs), len(pairs))  # before the base model is evaluated or loaded
    report = FinetuneReport(
        model=str(out), base=base, train=str(train), pairs=_count_sources(pairs),
        trained_pairs=0, steps=0, seconds=0.0, options=asdict(options),
    )  # fmt: skip
    if eval_data is not None:
        report.before = _evaluate(str(base_folder), eval_data, eval_split, show_progress)
    from embedstack.training.trainer import train_model

    started = time.perf_counter()
    report.steps, report.losses, report.trained_pairs = train_model(
        base_folder, pairs, corpus, out, options, callbacks=callbacks, show_progress=show_progress
    )
    report.seconds = time.perf_counter() - started
    if eval_data is not None:
        report.after = _evaluate(str(out), eval_data, eval_split, show_progress)
    provenance = out / TRAINING_FILE
    provenance.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    if mlflow is not False:
        report.mlflow_run = _track(report, None if mlflow is True else mlflow, out)
        provenance.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return report


def _count_sources(pairs: Sequence[TrainingPair]) -> dict[str, int]:
    return dict(Counter(pair.source for pair in pairs))


def _evaluate(model: str, data: str | Path, split: str, show_progress: bool) -> dict[str, Any]:
    from embedstack.evaluation.retrieval import evaluate_retrieval

    result = evaluate_retrieval(data, load_model(model), split=split, mode="dense",
                                show_progress=show_progress)  # fmt: skip
    keep = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "docs_per_s")
    return {key: result[key] for key in keep}


def _track(report: FinetuneReport, uri: str | None, out: Path) -> str:
    from embedstack.tracking import tracked_run

    with tracked_run(uri, f"finetune {out.name}", {"embedstack.command": "finetune"}) as run:
        run.log_params({"base": report.base, "train": report.train, **report.options,
                        **{f"pairs_{k}": v for k, v in report.pairs.items()}})  # fmt: skip
        for step, loss in report.losses:
            run.log_metrics({"train_loss": loss}, step=step)
        for prefix, metrics in (("before", report.before), ("after", report.after)):
            run.log_metrics({f"{prefix}_{k}": v for k, v in (metrics or {}).items()})
        run.log_metrics({"train_seconds": report.seconds, "steps": report.steps})
        run.log_sentence_transformer(out)
        return run.id


def require_trainer() -> None:
    """Fail at once when the `train` extra is missing (found without importing it: slow)."""
    missing = [name for name in ("sentence_transformers", "datasets") if find_module(name) is None]
    if missing:
        raise ModelLoadError(
            f'fine-tuning needs {" and ".join(missing)}: pip install "embedstack[train]"'
        )
