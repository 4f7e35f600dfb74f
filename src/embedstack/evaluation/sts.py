"""Semantic textual similarity (STS Benchmark format), scored as MTEB does: Spearman of cosines."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

from embedstack.errors import DatasetError, InvalidInputError
from embedstack.evaluation.report import EvalReport
from embedstack.models import DEFAULT_MODEL, EmbeddingModel, load_model


@dataclass
class StsPairs:
    first: list[str]
    second: list[str]
    scores: np.ndarray  # gold similarity, 0–5


def load_sts(folder: str | Path, split: str = "test") -> StsPairs:
    """Read `sts-<split>.csv`: tab-separated, score in field 5, sentences in fields 6 and 7.

    Split on tabs, not with a CSV parser: some rows carry quotes and extra columns.
    """
    path = Path(folder) / f"sts-{split}.csv"
    if not path.is_file():
        raise DatasetError(f"missing {path}")
    pairs = StsPairs([], [], np.empty(0))
    scores = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: unreadable ({exc})") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            score = float(fields[4])
            first, second = fields[5], fields[6]
        except (IndexError, ValueError) as exc:
            raise DatasetError(f"{path}:{number}: expected a score and two sentences") from exc
        pairs.first.append(first)
        pairs.second.append(second)
        scores.append(score)
    pairs.scores = np.array(scores)
    _check_gold(pairs.scores, str(path))
    return pairs


def _check_gold(scores: np.ndarray, where: str) -> None:
    """Correlation is undefined with fewer than two pairs or one gold score for all of them."""
    if len(scores) < 2:
        found = "no sentence pairs" if not len(scores) else "one sentence pair only"
        raise DatasetError(f"{where} has {found}; a correlation needs at least two")
    if np.all(scores == scores[0]):
        raise DatasetError(
            f"{where}: every pair has the same gold score ({scores[0]:g}); "
            "a correlation needs at least two different scores"
        )


def evaluate_sts(
    data: str | Path | StsPairs,
    model: str | EmbeddingModel = DEFAULT_MODEL,
    *,
    split: str = "test",
    batch_size: int = 32,
    show_progress: bool = False,
) -> EvalReport:
    """Spearman (MTEB's main score) and Pearson correlation of cosine similarity with gold."""
    if isinstance(data, StsPairs):
        _check_gold(np.asarray(data.scores, dtype=float), "the STS pairs")
        pairs = data
    else:
        pairs = load_sts(data, split)
    encoder = load_model(model) if isinstance(model, str) else model
    started = time.perf_counter()
    first = encoder.encode(pairs.first, batch_size=batch_size, show_progress_bar=show_progress)
    second = encoder.encode(pairs.second, batch_size=batch_size, show_progress_bar=show_progress)
    seconds = time.perf_counter() - started
    cosines = (first * second).sum(axis=1)
    if np.all(cosines == cosines[0]):
        raise InvalidInputError(
            f"{encoder.name} gives every pair the same cosine similarity ({float(cosines[0]):g}), "
            "so its correlation with the gold scores is undefined"
        )
    return EvalReport(
        {
            "spearman": float(spearmanr(cosines, pairs.scores).statistic),
            "pearson": float(pearsonr(cosines, pairs.scores).statistic),
            "n_pairs": len(pairs.scores),
            "sentences_per_s": 2 * len(pairs.scores) / seconds,
            "model": encoder.name,
            "backend": encoder.backend,
            "split": split,
        },
        task="STS",
        data=data,
    )
