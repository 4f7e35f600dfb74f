"""A leaderboard: several embedding models evaluated side by side on the same BEIR data, so a
user can choose a model on their own documents rather than on published benchmark figures.

Each model runs in a fresh process (multiprocessing's spawn context), for three reasons:

- memory: `ru_maxrss` is a high-water mark that never goes down, so in one process every model
  after the largest would report the largest one's peak; a fresh process measures each alone;
- speed: one model's thread pools, allocator state and warm caches do not favour the next;
- safety: a model that crashes the interpreter (a native library, the OOM killer) becomes a row
  with a reason instead of ending the whole run.

The cost is one interpreter start and import per model (about 2 s). A load that first builds
cached files (ONNX export, int8 quantisation, model2vec distillation) is not measured: the child
notices that the cache changed and the model runs again in another fresh process, so that the
numbers are those of every later use.
"""

from __future__ import annotations

import html
import multiprocessing
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedstack.errors import EmbedstackError, InvalidInputError, ModelNotFoundError
from embedstack.evaluation.beir import BeirDataset, load_beir
from embedstack.evaluation.classification import (
    ClassificationData,
    evaluate_classification,
    load_classification,
)
from embedstack.evaluation.retrieval import evaluate_retrieval
from embedstack.evaluation.sts import StsPairs, evaluate_sts, load_sts
from embedstack.html_tables import html_table
from embedstack.models import CATALOG, EmbeddingModel, ModelSpec, find_spec, load_model
from embedstack.models.onnx_export import cache_root
from embedstack.search.options import MODES

INSTALLED = "installed"  # in `models`: every installed catalog text model, e.g. "installed,./mine"
LATENCY_QUERIES = 100  # single-query timings taken for the median
LATENCY_WARMUP = 3  # untimed calls first: the first runs of a session allocate buffers
STORED_BYTES_PER_FLOAT = np.dtype("<f4").itemsize  # collections store float32 vectors
SUBSAMPLE_SEED = 0


@dataclass
class LeaderboardRow:
    """One model's scores and costs; `error` says why a model has no scores."""

    model: str  # as asked for: a catalog name or a path
    backend: str | None = None
    ndcg_at_10: float | None = None
    recall_at_100: float | None = None
    docs_per_s: float | None = None  # corpus embedding and storing, batched
    query_ms: float | None = None  # median ms to embed one query, one query per call
    queries_per_s: float | None = None  # batched embedding and search of all queries
    dim: int | None = None
    bytes_per_vector: int | None = None  # as a collection stores it (float32)
    memory_mb: float | None = None  # peak RSS increase while the model loads and embeds
    load_s: float | None = None
    sts_spearman: float | None = None
    classification_accuracy: float | None = None
    n_docs: int | None = None
    n_queries: int | None = None
    error: str | None = None


# (header, LeaderboardRow field, format spec): one list for the terminal, HTML and Markdown.
COLUMNS: list[tuple[str, str, str]] = [
    ("model", "model", ""),
    ("backend", "backend", ""),
    ("nDCG@10", "ndcg_at_10", ".4f"),
    ("recall@100", "recall_at_100", ".4f"),
    ("docs/s", "docs_per_s", ",.1f"),
    ("query ms (median)", "query_ms", ".2f"),
    ("dim", "dim", "d"),
    ("bytes/vector", "bytes_per_vector", ",d"),
    ("memory MB", "memory_mb", ",.0f"),
]
STS_COLUMN = ("STS Spearman", "sts_spearman", ".4f")
CLASSIFICATION_COLUMN = ("classif. accuracy", "classification_accuracy", ".4f")
ERROR_COLUMN = ("not ranked because", "error", "")


@dataclass
class Leaderboard:
    """Rows sorted by nDCG@10 (best first); models that could not run come last."""

    rows: list[LeaderboardRow]
    data: str
    split: str
    mode: str
    n_docs: int
    n_queries: int
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> LeaderboardRow | None:
        return self.rows[0] if self.rows and self.rows[0].error is None else None

    def to_dicts(self) -> list[dict[str, Any]]:
        return [asdict(row) for row in self.rows]

    def columns(self) -> list[tuple[str, str, str]]:
        """The columns worth showing: STS, classification and reasons only when present."""
        extra = [
            column
            for column in (STS_COLUMN, CLASSIFICATION_COLUMN, ERROR_COLUMN)
            if any(getattr(row, column[1]) is not None for row in self.rows)
        ]
        return COLUMNS + extra

    def cells(self) -> list[list[str]]:
        """Every row as formatted strings, in `columns()` order ("–" where there is no value)."""
        columns = self.columns()
        return [
            [format_cell(getattr(row, name), spec) for _, name, spec in columns] for row in self
        ]

    def title(self) -> str:
        return (
            f"{self.data} ({self.split}) · {self.n_queries} queries · {self.n_docs:,} documents"
            f" · {self.mode} retrieval"
        )

    def __iter__(self) -> Iterator[LeaderboardRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def _repr_html_(self) -> str:
        """A table for notebooks; the best model's name is marked (every cell is escaped)."""
        headers = [header for header, _, _ in self.columns()]
        cells = self.cells()
        if self.best is not None and cells:
            cells[0][0] = f"★ {cells[0][0]}"
        notes = "".join(f"<p>{html.escape(note)}</p>" for note in self.notes)
        return html_table(cells, headers, caption=self.title()) + notes


def format_cell(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


# ---- the parent: data, model list, one fresh process per model ---------------------------------


@dataclass
class _Task:
    """What a child process needs; pickled, so every model sees the very same data."""

    name: str  # as shown
    target: str  # as loaded (a path with ~ expanded)
    dataset: BeirDataset
    split: str
    mode: str
    batch_size: int
    sts: StsPairs | None
    classification: ClassificationData | None
    show_progress: bool
    accept_cache_build: bool = False


@dataclass
class _Outcome:
    row: LeaderboardRow | None = None
    cache_built: bool = False  # the load wrote cached files: measure again in a fresh process


def leaderboard(
    data: str | Path | BeirDataset,
    models: str | list[str] | None = None,
    *,
    split: str = "test",
    mode: str = "dense",
    sts: str | Path | StsPairs | None = None,
    classification: str | Path | ClassificationData | None = None,
    max_docs: int | None = None,
    batch_size: int = 32,
    show_progress: bool = False,
) -> Leaderboard:
    """Evaluate each model on the same data (each in a fresh process) and rank by nDCG@10.

    `models`: catalog names or model paths (a list, or one comma-separated string); "installed"
    stands for every installed catalog text model, which is also the default. Dense retrieval
    by default, since the embeddings are what is compared. `max_docs` keeps every judged
    document and a seeded random sample of the others: cheap smoke runs, higher scores.
    A model that cannot be found, loaded or run gets a row with the reason, not an exception.
    """
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, not {batch_size}")
    names, skipped = model_list(models)
    if not names:
        why = f" ({skipped[0]}{', …' if len(skipped) > 1 else ''})" if skipped else ""
        raise InvalidInputError(f"no models to rank: name at least one model{why}")
    dataset, notes = _retrieval_data(data, split, max_docs)
    # Bad STS or classification data fails here, before any model runs.
    sts_pairs = sts if isinstance(sts, StsPairs) or sts is None else load_sts(sts, "test")
    if classification is None or isinstance(classification, ClassificationData):
        labelled = classification
    else:
        labelled = load_classification(classification)
    rows = []
    for number, name in enumerate(names, start=1):
        task = _Task(
            name, str(Path(name).expanduser()) if name.startswith("~") else name, dataset,
            split, mode, batch_size, sts_pairs, labelled, show_progress,
        )  # fmt: skip
        rows.append(_run_model(task, f"[{number}/{len(names)}] {name}"))
    return Leaderboard(
        rows=ranked(rows), data=str(data) if isinstance(data, str | Path) else "data",
        split=split, mode=mode, n_docs=len(dataset.corpus), n_queries=len(dataset.queries),
        notes=notes + skipped,
    )  # fmt: skip


def _retrieval_data(
    data: str | Path | BeirDataset, split: str, max_docs: int | None
) -> tuple[BeirDataset, list[str]]:
    """The data set every model sees, and a note when `max_docs` cut its corpus."""
    dataset = data if isinstance(data, BeirDataset) else load_beir(data, split)
    if max_docs is None:
        return dataset, []
    full = len(dataset.corpus)
    dataset = subsample(dataset, max_docs)
    if len(dataset.corpus) == full:
        return dataset, []
    note = (
        f"--max-docs: {len(dataset.corpus):,} of {full:,} documents (every judged one kept, "
        "the others sampled), so scores are higher than on the full corpus."
    )
    return dataset, [note]


def _run_model(task: _Task, label: str) -> LeaderboardRow:
    """One model's row, with a progress line before and after (stderr, when asked for)."""
    _say(task.show_progress, label)
    started = time.perf_counter()
    reason = precheck(task.name)
    row = LeaderboardRow(model=task.name, error=reason) if reason else run_isolated(task)
    _say(task.show_progress, f"{label}: {_summary(row, started)}")
    return row


def subsample(dataset: BeirDataset, max_docs: int, seed: int = SUBSAMPLE_SEED) -> BeirDataset:
    """Every judged document plus seeded random others, up to `max_docs` in all (more if the
    judged ones alone are more), in corpus order: scores stay comparable between models."""
    if max_docs < 1:
        raise InvalidInputError(f"max_docs must be at least 1, not {max_docs}")
    judged = {doc for docs in dataset.qrels.values() for doc in docs} & dataset.corpus.keys()
    others = [doc for doc in dataset.corpus if doc not in judged]
    room = max(0, max_docs - len(judged))
    kept = judged | set(random.Random(seed).sample(others, min(room, len(others))))
    corpus = {doc: text for doc, text in dataset.corpus.items() if doc in kept}
    return BeirDataset(corpus=corpus, queries=dataset.queries, qrels=dataset.qrels)


def model_list(models: str | list[str] | None) -> tuple[list[str], list[str]]:
    """The models to run, in order without repeats, and notes on catalog models left out."""
    asked = [INSTALLED] if models is None else models
    if isinstance(asked, str):
        asked = asked.split(",")
    names: list[str] = []
    notes: list[str] = []
    for entry in (item.strip() for item in asked):
        if entry == INSTALLED:
            names += [spec.name for spec in _catalog_text() if spec.installed()]
            notes += [
                f"not installed, not ranked: {spec.name} ({spec.install_command()})"
                for spec in _catalog_text()
                if not spec.installed()
            ]
        elif entry:
            names.append(entry)
    return list(dict.fromkeys(names)), notes


def _catalog_text() -> list[ModelSpec]:
    return [spec for spec in CATALOG.values() if spec.modality == "text"]


def precheck(name: str) -> str | None:
    """Why `name` cannot run, when that is known without starting a process (else None)."""
    if Path(name).expanduser().exists():
        return None
    try:
        spec = find_spec(name)
    except ModelNotFoundError as exc:
        if os.sep in name or "/" in name or name.endswith(".onnx"):
            return f"no model folder or file at {name}"
        return str(exc)
    if not spec.installed():
        return f"not installed: {spec.install_command()}"
    if spec.modality != "text":
        return f"it embeds {spec.modality}: the leaderboard ranks text retrieval"
    return None


def run_isolated(task: _Task) -> LeaderboardRow:
    """Run one model in a fresh process; again in another one if its load built cache files."""
    outcome = _in_fresh_process(task)
    if outcome.cache_built:
        task.accept_cache_build = True
        outcome = _in_fresh_process(task)
    assert outcome.row is not None
    return outcome.row


def _in_fresh_process(task: _Task) -> _Outcome:
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(evaluate_one, task).result()
    except BrokenProcessPool:
        reason = "its process died (out of memory, or a crash in a native library)"
        return _Outcome(row=LeaderboardRow(model=task.name, error=reason))


def ranked(rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Best nDCG@10 first; rows without scores last, in the order asked."""
    scored = [row for row in rows if row.ndcg_at_10 is not None]
    failed = [row for row in rows if row.ndcg_at_10 is None]
    return sorted(scored, key=lambda row: -(row.ndcg_at_10 or 0.0)) + failed


def _summary(row: LeaderboardRow, started: float) -> str:
    took = f"{time.perf_counter() - started:.1f} s"
    if row.error is not None:
        return f"not ranked ({row.error}) · {took}"
    return f"nDCG@10 {row.ndcg_at_10:.4f} · {took}"


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


# ---- the child: load, evaluate, measure --------------------------------------------------------


def evaluate_one(task: _Task) -> _Outcome:
    """Load and evaluate one model; runs in a fresh process (see the module docstring)."""
    baseline = reset_peak_rss()
    cache_before = cache_state()
    started = time.perf_counter()
    try:
        encoder = load_model(task.target)
    except Exception as exc:  # any load failure is a row, whatever raised it
        return _failed(task, f"could not load: {_reason(exc)}")
    load_s = time.perf_counter() - started
    if not task.accept_cache_build and cache_state() != cache_before:
        return _Outcome(cache_built=True)
    if encoder.modality != "text":
        return _failed(task, f"it embeds {encoder.modality}: the leaderboard ranks text retrieval")
    try:
        row = _measure(task, encoder, baseline)
    except Exception as exc:  # a model failing on some text must not end the leaderboard
        return _failed(task, f"failed while evaluating: {_reason(exc)}")
    row.load_s = load_s
    return _Outcome(row=row)


def _measure(task: _Task, encoder: EmbeddingModel, baseline: int) -> LeaderboardRow:
    result = evaluate_retrieval(
        task.dataset, encoder, split=task.split, batch_size=task.batch_size, mode=task.mode,
        show_progress=task.show_progress,
    )  # fmt: skip
    query_ms = median_query_ms(encoder, list(task.dataset.queries.values()))
    # Memory is read before STS and classification, so that it does not depend on them.
    memory_mb = (peak_rss_bytes() - baseline) / 2**20
    row = LeaderboardRow(
        model=task.name, backend=encoder.backend, ndcg_at_10=result["ndcg@10"],
        recall_at_100=result["recall@100"], docs_per_s=result["docs_per_s"], query_ms=query_ms,
        queries_per_s=result["queries_per_s"], dim=encoder.dim,
        bytes_per_vector=encoder.dim * STORED_BYTES_PER_FLOAT, memory_mb=memory_mb,
        n_docs=result["n_docs"], n_queries=result["n_queries"],
    )  # fmt: skip
    if task.sts is not None:
        row.sts_spearman = evaluate_sts(task.sts, encoder, batch_size=task.batch_size)["spearman"]
    if task.classification is not None:
        scores = evaluate_classification(task.classification, encoder, batch_size=task.batch_size)
        row.classification_accuracy = scores["accuracy"]
    return row


def median_query_ms(encoder: EmbeddingModel, queries: list[str]) -> float:
    """Median ms to embed one query alone, as a search request does; the median, because a
    shared machine's stray pauses would move a mean. Index search is not included."""
    sample = queries[:LATENCY_QUERIES]
    for text in sample[:LATENCY_WARMUP]:
        encoder.encode_query(text)
    timings = []
    for text in sample:
        started = time.perf_counter()
        encoder.encode_query(text)
        timings.append(time.perf_counter() - started)
    return 1000 * statistics.median(timings)


def reset_peak_rss() -> int:
    """Start measuring the peak from here; returns the baseline to subtract from it.

    On Linux, writing 5 to /proc/self/clear_refs resets the peak (VmHWM) to the current RSS, so
    a transient peak while modules were imported does not hide what the model adds. Elsewhere
    the baseline is the peak so far (the increase can then read 0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status_bytes("VmRSS")
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """This process's peak resident memory since the last reset (Linux: VmHWM)."""
    try:
        return _proc_status_bytes("VmHWM")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return peak if sys.platform == "darwin" else peak * 1024


def _proc_status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"
    raise OSError(f"no {field} in /proc/self/status")


def cache_state() -> frozenset[tuple[str, int, int]]:
    """Every cached file's path, size and mtime: a load that changes it built something."""
    root = cache_root()
    found = set()
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".lock"):
                continue
            path = Path(folder) / name
            try:
                stat = path.stat()
            except OSError:  # removed meanwhile (a temporary file renamed into place)
                continue
            found.add((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return frozenset(found)


def _failed(task: _Task, reason: str) -> _Outcome:
    return _Outcome(row=LeaderboardRow(model=task.name, error=reason))


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, EmbedstackError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
