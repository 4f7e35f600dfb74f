"""The training run itself: pairs into a `datasets.Dataset`, hard negatives, the loss, and
`SentenceTransformerTrainer` with a progress bar, timed checkpoints and a safe Ctrl-C.

Imports transformers (and torch): only `finetune` imports this module, when it trains.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import transformers
from transformers import PrinterCallback, TrainerCallback

from embedstack.models.sbert_folder import side_prompts
from embedstack.progress import progress_with_status
from embedstack.settings import get_settings
from embedstack.training.options import FinetuneOptions
from embedstack.training.pairs import TrainingPair, check_enough_pairs

# Trainer state in a checkpoint that a model folder does not need.
STATE_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
               "training_args.bin")  # fmt: skip
MINING_RANGE = 50  # negatives are drawn from each query's top 50 (ST's documented recipe)
MINING_CORPUS = 20_000  # documents searched for negatives: ~15 min of CPU embedding at most
RELATIVE_MARGIN = 0.05  # a negative scores < 95% of the positive: near-ties may be unjudged hits
CHECKPOINTS = "checkpoints"


class FinetuneInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: `saved` is the model of the last checkpoint (None: none yet)."""

    def __init__(self, saved: Path | None, step: int | None, total: int) -> None:
        super().__init__()
        self.saved, self.step, self.total = saved, step, total


def train_model(
    base_folder: Path,
    pairs: Sequence[TrainingPair],
    corpus: Sequence[str],
    out: Path,
    options: FinetuneOptions,
    *,
    callbacks: Sequence[Any] = (),
    show_progress: bool = False,
) -> tuple[int, list[tuple[int, float]], int]:
    """Train into a hidden folder beside `out` and rename it into place when done.

    Returns (steps, [(step, loss)], pairs trained on: mining drops those without a negative).
    Fewer than 2 pairs left fail with InvalidInputError before anything is written. A crash
    leaves no `out`; Ctrl-C publishes the last checkpoint as `out` and raises
    FinetuneInterrupted.
    """
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

    quiet_libraries()
    work = out.with_name(f".{out.name}.training-{os.getpid()}")
    progress = _Progress(show_progress)
    checkpoints = _TimedCheckpoints(options.checkpoint_minutes * 60)
    try:
        model = SentenceTransformer(str(base_folder), device="cpu", local_files_only=True)
        dataset = to_dataset(pairs)
        if options.hard_negatives and "negative" not in dataset.column_names:
            dataset = mine_negatives(dataset, model, corpus, base_folder, options, show_progress)
        check_enough_pairs(len(dataset), len(pairs))
        out.parent.mkdir(parents=True, exist_ok=True)
        trainer = SentenceTransformerTrainer(
            model=model,
            args=training_arguments(
                work / CHECKPOINTS, options, column_prompts(model, dataset.column_names)
            ),
            train_dataset=dataset,
            loss=build_loss(model, options, base_folder),
            callbacks=[progress, checkpoints, *callbacks],
        )
        trainer.remove_callback(PrinterCallback)  # our bar shows the loss; no dict per step
        trainer.train()
        model.save(str(work / "model"))
        os.replace(work / "model", out)
    except KeyboardInterrupt:
        if out.exists():  # Ctrl-C after the finished model was published
            raise FinetuneInterrupted(out, progress.total, progress.total) from None
        saved = checkpoints.last_saved
        if saved is not None:
            promote_checkpoint(work / CHECKPOINTS / f"checkpoint-{saved}", out)
        raise FinetuneInterrupted(out if saved else None, saved, progress.total) from None
    finally:
        progress.close()
        remove_tree(work)
    return trainer.state.global_step, progress.losses, len(dataset)


def quiet_libraries() -> None:
    """Our bars and messages only: no per-library bars, logs or deprecation chatter."""
    import datasets

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def to_dataset(pairs: Sequence[TrainingPair]) -> Any:
    """Columns anchor, positive[, negative]: the trainer reads them in this order. Given
    negatives are kept only when every pair has one (a column cannot have holes)."""
    from datasets import Dataset

    columns: dict[str, list[str]] = {
        "anchor": [p.query for p in pairs],
        "positive": [p.positive for p in pairs],
    }
    if pairs and all(p.negative for p in pairs):
        columns["negative"] = [p.negative or "" for p in pairs]
    return Dataset.from_dict(columns)


def mine_negatives(
    dataset: Any,
    model: Any,
    corpus: Sequence[str],
    base_folder: Path,
    options: FinetuneOptions,
    show_progress: bool,
) -> Any:
    """`options.hard_negatives` negatives per pair from the corpus: the most similar documents
    that are not a positive of the query and score under 95% of its positive. The corpus
    embeddings are cached (by model and corpus), so a second recipe on the same data is quick."""
    from sentence_transformers.util import mine_hard_negatives

    pairs_only = dataset.select_columns(["anchor", "positive"])
    if len(corpus) > MINING_CORPUS:  # embedding it is the cost: bound it (positives stay in)
        corpus = random.Random(options.seed).sample(list(corpus), MINING_CORPUS)
    # sentence-transformers names its cache files by the model's hub name, "" for a folder:
    # one cache folder per base model keeps two models' embeddings apart.
    cache = get_settings().cache_dir / "hard-negatives" / model_key(base_folder)
    query_prompt, corpus_prompt = side_prompts(model.prompts or {})
    with contextlib.redirect_stdout(sys.stderr):  # its statistics must not mix into --json
        mined = mine_hard_negatives(
            pairs_only, model, corpus=list(corpus), range_max=MINING_RANGE,
            query_prompt=query_prompt or None, corpus_prompt=corpus_prompt or None,
            relative_margin=RELATIVE_MARGIN, num_negatives=options.hard_negatives,
            sampling_strategy="top", output_format="n-tuple", batch_size=options.batch_size,
            verbose=show_progress, cache_folder=str(cache),
        )  # fmt: skip
    return keep_unmined(pairs_only, mined, corpus, options.seed)


def model_key(folder: Path) -> str:
    """Identify a model folder by its path and its weight files' sizes and times."""
    parts = [str(folder.resolve())]
    for weights in sorted(folder.rglob("*")):
        if weights.suffix in (".safetensors", ".bin") and weights.is_file():
            stat = weights.stat()
            parts.append(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def keep_unmined(pairs: Any, mined: Any, corpus: Sequence[str], seed: int) -> Any:
    """Put back the pairs `mine_hard_negatives` dropped, with random negatives from the corpus.

    It drops a pair when no candidate passes the margin, which happens when the positive
    scores low: the queries the base model gets wrong, the very ones training is for (14% of
    SciFact's train pairs). A random document is an easy negative, but the pair still teaches.
    """
    from datasets import Dataset, concatenate_datasets

    negative_columns = [c for c in mined.column_names if c not in ("anchor", "positive")]
    positives: dict[str, set[str]] = {}
    for anchor, positive in zip(pairs["anchor"], pairs["positive"], strict=True):
        positives.setdefault(anchor, set()).add(positive)
    kept = set(zip(mined["anchor"], mined["positive"], strict=True))
    missing = [(a, p) for a, p in zip(pairs["anchor"], pairs["positive"], strict=True)
               if (a, p) not in kept]  # fmt: skip
    if not missing or not negative_columns:
        return mined
    rng = random.Random(seed)
    rows: dict[str, list[str]] = {"anchor": [], "positive": [], **{c: [] for c in negative_columns}}
    for anchor, positive in missing:
        negatives = [_random_negative(rng, corpus, positives[anchor]) for _ in negative_columns]
        if None in negatives:
            continue  # the corpus holds nothing but this query's positives
        rows["anchor"].append(anchor)
        rows["positive"].append(positive)
        for column, negative in zip(negative_columns, negatives, strict=True):
            rows[column].append(negative or "")
    return concatenate_datasets([mined, Dataset.from_dict(rows)])


def _random_negative(rng: random.Random, corpus: Sequence[str], positives: set[str]) -> str | None:
    for _ in range(100):
        text = corpus[rng.randrange(len(corpus))]
        if text not in positives:
            return text
    others = [text for text in corpus if text not in positives]
    return rng.choice(others) if others else None


def build_loss(model: Any, options: FinetuneOptions, base_folder: Path) -> Any:
    """MultipleNegativesRankingLoss (in-batch and mined negatives), its cached variant (big
    batches in small memory), or GISTEmbed (the frozen base model guides which in-batch
    negatives are false ones); wrapped in MatryoshkaLoss when dimensions are given."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses

    loss: Any
    if options.loss == "cached-mnrl":
        loss = losses.CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=min(32, options.batch_size)
        )
    elif options.loss == "gist":
        guide = SentenceTransformer(str(base_folder), device="cpu", local_files_only=True)
        loss = losses.GISTEmbedLoss(model, guide)
    else:
        loss = losses.MultipleNegativesRankingLoss(model)
    if options.matryoshka:
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=list(options.matryoshka))
    return loss


def column_prompts(model: Any, columns: Sequence[str]) -> dict[str, str]:
    """The trainer's prompt per column: the query's for anchors, the document's for the rest.
    A model with prompts (E5: "query: ", "passage: ") must be trained with them too, or it is
    tuned for inputs it never gets."""
    query, document = side_prompts(model.prompts or {})
    chosen = {column: query if column == "anchor" else document for column in columns}
    return {column: prompt for column, prompt in chosen.items() if prompt}


def training_arguments(
    output_dir: Path, options: FinetuneOptions, prompts: dict[str, str] | None = None
) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    # Transformers 5 takes the warmup ratio as a float `warmup_steps`; 4 as `warmup_ratio`.
    major = int(transformers.__version__.split(".", 1)[0])
    warmup_name = "warmup_steps" if major >= 5 else "warmup_ratio"
    warmup: dict[str, Any] = {warmup_name: options.warmup_ratio}
    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps or -1,
        per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        **warmup,
        # The same query twice in a batch makes its own positive a negative.
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",  # _TimedCheckpoints decides when
        save_total_limit=1,
        save_only_model=True,  # a checkpoint is a model to keep, not a run to resume
        logging_steps=1,
        report_to="none",
        prompts=prompts or None,
        use_cpu=True,
        seed=options.seed,
        disable_tqdm=True,
    )


def promote_checkpoint(checkpoint: Path, out: Path) -> None:
    """Publish a trainer checkpoint as a model folder: its files minus the trainer state,
    copied beside `out` and renamed into place, so `out` is never half written."""
    staging = out.with_name(f".{out.name}.staging-{os.getpid()}")
    remove_tree(staging)
    shutil.copytree(checkpoint, staging, ignore=shutil.ignore_patterns(*STATE_FILES))
    os.replace(staging, out)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class _Progress(TrainerCallback):
    """Draws the bar (loss and ETA) and keeps the training curve."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.losses: list[tuple[int, float]] = []
        self.total = 0
        self._stack = ExitStack()
        self._update = lambda n, status: None
        self._status = ""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.total = state.max_steps
        self._update = self._stack.enter_context(
            progress_with_status(self.total, "Fine-tuning", enabled=self.enabled, unit="steps")
        )

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        loss = (logs or {}).get("loss")
        if isinstance(loss, int | float) and math.isfinite(loss):
            self.losses.append((state.global_step, float(loss)))
            self._status = f"loss {loss:.4f}"

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._update(1, self._status)

    def close(self) -> None:
        self._stack.close()


class _TimedCheckpoints(TrainerCallback):
    """Save every `seconds` of training (and never in a run shorter than that), so Ctrl-C
    loses at most that much work whatever the step speed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = time.monotonic()
        self.last_saved: int | None = None  # the step of the last checkpoint written in full

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if time.monotonic() - self._last >= self.seconds and state.global_step < state.max_steps:
            control.should_save = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last = time.monotonic()  # called after the checkpoint is written
        self.last_saved = state.global_step
