"""Training pairs for fine-tuning: (query, positive[, negative]) from a JSONL file or a BEIR
folder's train qrels. Pairs made from a collection without labels are in pseudo_queries."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from embedstack.config import CONFIG_FILE
from embedstack.errors import DatasetError, InvalidInputError
from embedstack.evaluation.beir import load_beir
from embedstack.evaluation.files import jsonl_rows


@dataclass(frozen=True)
class TrainingPair:
    query: str
    positive: str
    negative: str | None = None
    source: str = "labelled"  # where the query came from: labelled, title, ict, llm


def read_pairs_jsonl(path: Path) -> list[TrainingPair]:
    """`{"query", "positive"[, "negative"]}` per line; a bad line fails with its number."""
    pairs: list[TrainingPair] = []
    for number, record in jsonl_rows(path):
        fields = {}
        for field in ("query", "positive", "negative"):
            value = record.get(field)
            if field != "negative" and (not isinstance(value, str) or not value.strip()):
                raise DatasetError(f"{path}:{number}: '{field}' must be a non-empty string")
            if field == "negative" and value is not None and not isinstance(value, str):
                raise DatasetError(f"{path}:{number}: 'negative' must be a string")
            fields[field] = value.strip() if isinstance(value, str) and value.strip() else None
        pairs.append(TrainingPair(fields["query"], fields["positive"], fields["negative"]))  # type: ignore[arg-type]
    if not pairs:
        raise DatasetError(f"{path} holds no training pairs")
    return pairs


def read_beir_pairs(folder: Path, split: str = "train") -> tuple[list[TrainingPair], list[str]]:
    """Every judged (query, relevant document) of a BEIR split (score > 0 is relevant), and the
    folder's documents as MTEB embeds them, to mine negatives among: one read of the corpus."""
    dataset = load_beir(folder, split)
    pairs = [
        TrainingPair(dataset.queries[query], dataset.corpus[doc])
        for query, judged in dataset.qrels.items()
        for doc, score in judged.items()
        if score > 0 and doc in dataset.corpus and dataset.corpus[doc]
    ]
    if not pairs:
        raise DatasetError(f"{folder}/qrels/{split}.tsv judges no document of the corpus relevant")
    return pairs, [text for text in dataset.corpus.values() if text]


def pairs_kind(source: Path) -> str:
    """What a `--train` path holds: "jsonl", "beir" or "collection"."""
    if source.is_file():
        return "jsonl"
    if (source / CONFIG_FILE).is_file():
        return "collection"
    if (source / "qrels").is_dir() and (source / "corpus.jsonl").is_file():
        return "beir"
    if not source.exists():
        raise DatasetError(f"no training data at {source}")
    raise DatasetError(
        f"{source} is neither a JSONL file of pairs, a BEIR folder (corpus.jsonl, qrels/) "
        f"nor a collection ({CONFIG_FILE})"
    )


def sample(pairs: Sequence[TrainingPair], limit: int | None, seed: int) -> list[TrainingPair]:
    """At most `limit` pairs, drawn evenly at random (the same ones for the same seed)."""
    if limit is None or len(pairs) <= limit:
        return list(pairs)
    return random.Random(seed).sample(list(pairs), limit)


def check_enough_pairs(kept: int, given: int) -> None:
    """In-batch negatives need two pairs: alone, a pair's loss is zero and nothing is learned."""
    if kept < 2:
        dropped = (
            f" ({given - kept} of {given} dropped: no negative found for them)"
            if kept < given
            else ""
        )
        raise InvalidInputError(
            f"fine-tuning needs at least 2 training pairs, got {kept}{dropped}; "
            "give more pairs (a fine-tune learns by telling them apart)"
        )
