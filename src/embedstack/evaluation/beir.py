"""Read a BEIR-format retrieval data set: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from embedstack.errors import DatasetError
from embedstack.evaluation.files import jsonl_rows


@dataclass
class BeirDataset:
    corpus: dict[str, str]  # doc id -> (title + " " + text).strip(), MTEB's document text
    queries: dict[str, str]  # query id -> text, only queries judged in the split
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    if not path.is_file():
        raise DatasetError(f"missing {path}")
    for number, record in jsonl_rows(path):
        if "_id" not in record:
            raise DatasetError(f"{path}:{number}: expected an object with an '_id' field")
        yield number, record


def _text_field(path: Path, number: int, record: dict, field: str) -> str:
    value = record.get(field, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DatasetError(f"{path}:{number}: '{field}' must be a string")
    return value


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise DatasetError(f"missing {path}")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            try:
                query_id, doc_id, score = row[0], row[1], int(row[2])
            except (IndexError, ValueError) as exc:
                raise DatasetError(
                    f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score'"
                ) from exc
            qrels.setdefault(query_id, {})[doc_id] = score
    if not qrels:
        raise DatasetError(f"{path} has no relevance judgements")
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Load a BEIR folder; errors name the file and line that is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"no data set folder at {folder}")
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    corpus: dict[str, str] = {}
    corpus_path = folder / "corpus.jsonl"
    for number, record in _jsonl(corpus_path):
        title = _text_field(corpus_path, number, record, "title")
        text = _text_field(corpus_path, number, record, "text")
        corpus[str(record["_id"])] = (title + " " + text).strip()
    if not corpus:
        raise DatasetError(f"{corpus_path} has no documents")
    queries: dict[str, str] = {}
    queries_path = folder / "queries.jsonl"
    for number, record in _jsonl(queries_path):
        query_id = str(record["_id"])
        if query_id in qrels:
            queries[query_id] = _text_field(queries_path, number, record, "text")
    if not queries:
        raise DatasetError(f"no query in {queries_path} has judgements in qrels/{split}.tsv")
    qrels = {q: docs for q, docs in qrels.items() if q in queries}
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels)
