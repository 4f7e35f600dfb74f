"""Training sets too small to learn from fail in one line, before anything is written: alone,
a pair's in-batch loss is zero, and a pair mining finds no negative for is dropped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedstack.errors import InvalidInputError
from embedstack.training import FinetuneOptions, finetune
from tests.training.test_finetune import PAIRS, write_pairs

pytest.importorskip("datasets")


def pairs_file(tmp_path: Path, pairs: list[tuple[str, str]]) -> Path:
    return write_pairs(tmp_path / "pairs.jsonl", [{"query": q, "positive": p} for q, p in pairs])


@pytest.mark.parametrize("hard_negatives", [1, 0])
def test_one_pair_is_refused(tmp_path, hard_negatives):
    options = FinetuneOptions(batch_size=4, max_steps=1, hard_negatives=hard_negatives)
    out = tmp_path / "models" / "one"
    with pytest.raises(InvalidInputError, match="needs at least 2 training pairs, got 1;"):
        finetune("all-MiniLM-L6-v2", pairs_file(tmp_path, PAIRS[:1]), out, options)
    assert not (tmp_path / "models").exists()


def test_pairs_mining_drops_are_counted_before_training(tmp_path):
    # Two questions with the same answer: the corpus holds no other text, so mining finds no
    # negative for either and both are dropped.
    answer = PAIRS[0][1]
    train = pairs_file(tmp_path, [("Capital of France?", answer), ("Where is Paris?", answer)])
    out = tmp_path / "models" / "none"
    with pytest.raises(InvalidInputError, match=r"got 0 \(2 of 2 dropped: no negative found"):
        finetune("all-MiniLM-L6-v2", train, out, FinetuneOptions(batch_size=4, max_steps=1))
    assert not (tmp_path / "models").exists()


def test_report_says_how_many_pairs_were_trained_on(tmp_path):
    options = FinetuneOptions(batch_size=2, max_steps=1, hard_negatives=0)
    report = finetune(
        "all-MiniLM-L6-v2", pairs_file(tmp_path, PAIRS[:2]), tmp_path / "two", options
    )
    assert report.trained_pairs == 2 and report.steps == 1 and np.isfinite(report.losses[0][1])
    provenance = json.loads((tmp_path / "two" / "embedstack_training.json").read_text())
    assert provenance["trained_pairs"] == 2


def test_cli_one_pair_is_one_line_and_writes_nothing(tmp_path):
    from tests.cli.test_cli import assert_one_line_error, run

    out = tmp_path / "m"
    result = run("finetune", "--train", pairs_file(tmp_path, PAIRS[:1]), "--out", out)
    assert_one_line_error(result, "needs at least 2 training pairs, got 1")
    assert not out.exists()
