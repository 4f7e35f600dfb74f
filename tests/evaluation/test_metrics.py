"""Metrics on hand-checked cases, and the BEIR reader's errors."""

from __future__ import annotations

import math

import pytest

from embedstack.errors import DatasetError
from embedstack.evaluation import load_beir, retrieval_metrics


def test_metrics_on_a_hand_checked_run():
    qrels = {"q1": {"d1": 1, "d2": 1}, "q2": {"d9": 1}}
    run = {
        "q1": {"d3": 0.9, "d1": 0.8, "d4": 0.5, "d2": 0.1},  # relevant at ranks 2 and 4
        "q2": {"d5": 0.7, "d6": 0.6},  # relevant doc not retrieved
    }
    result = retrieval_metrics(qrels, run)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3)
    assert result["ndcg@10"] == pytest.approx((dcg / ideal + 0.0) / 2)
    assert result["recall@10"] == pytest.approx(0.5)
    assert result["recall@100"] == pytest.approx(0.5)
    assert result["mrr@10"] == pytest.approx((1 / 2 + 0) / 2)


def write_beir(folder, corpus_lines, queries_lines, qrels_text):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(corpus_lines) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(queries_lines) + "\n")
    (folder / "qrels" / "test.tsv").write_text(qrels_text)


def test_reader_builds_mteb_document_text(tmp_path):
    write_beir(
        tmp_path,
        [
            '{"_id": "d1", "title": "Title", "text": "Body."}',
            '{"_id": "d2", "text": " Only body "}',
        ],
        ['{"_id": "q1", "text": "question?"}', '{"_id": "q2", "text": "unjudged"}'],
        "query-id\tcorpus-id\tscore\nq1\td1\t1\n",
    )
    data = load_beir(tmp_path)
    assert data.corpus == {"d1": "Title Body.", "d2": "Only body"}
    assert data.queries == {"q1": "question?"}
    assert data.qrels == {"q1": {"d1": 1}}


@pytest.mark.parametrize(
    "corpus, qrels, message",
    [
        (
            ['{"_id": "d1", "text": "ok"}', '{"_id": "d2", "text": "cut'],
            "q1\td1\t1\n",
            r"corpus.jsonl:2: not valid JSON",
        ),
        (['{"text": "no id"}'], "q1\td1\t1\n", r"corpus.jsonl:1: expected an object with an '_id'"),
        (['{"_id": "d1", "text": 5}'], "q1\td1\t1\n", r"corpus.jsonl:1: 'text' must be a string"),
        (['{"_id": "d1", "text": "ok"}'], "q1\td1\tnot-a-number\n", r"test.tsv:1: expected"),
    ],
)
def test_reader_names_the_bad_line(tmp_path, corpus, qrels, message):
    write_beir(tmp_path, corpus, ['{"_id": "q1", "text": "q"}'], qrels)
    with pytest.raises(DatasetError, match=message):
        load_beir(tmp_path)


def test_missing_split_is_named(tmp_path):
    write_beir(tmp_path, ['{"_id": "d1", "text": "ok"}'], ['{"_id": "q1", "text": "q"}'], "")
    with pytest.raises(DatasetError, match="dev.tsv"):
        load_beir(tmp_path, split="dev")
