"""STS evaluation on real STS Benchmark pairs, and the reader's errors."""

from __future__ import annotations

import pytest

from embedstack.errors import DatasetError
from embedstack.evaluation import evaluate_sts, load_sts
from tests.conftest import SHARED_DATA, needs_shared_data


def sts_slice(folder, n: int = 300):
    lines = (SHARED_DATA / "stsbenchmark" / "sts-test.csv").read_text(encoding="utf-8")
    folder.mkdir(parents=True)
    (folder / "sts-test.csv").write_text("\n".join(lines.splitlines()[:n]) + "\n")
    return folder


@needs_shared_data
def test_sts_spearman_on_real_pairs(tmp_path, model):
    result = evaluate_sts(sts_slice(tmp_path / "sts"), model)
    assert result["n_pairs"] == 300
    # MiniLM scores 0.82 on the full test split; a shuffled scorer would give ~0.
    assert 0.7 < result["spearman"] < 0.95
    assert result["backend"] == model.backend  # the runtime `auto` chose on this CPU


def test_sts_reader_names_the_bad_line(tmp_path):
    good = "main-captions\tMSRvid\t2012test\t0001\t5.000\tA man.\tA man.\n"
    (tmp_path / "sts-test.csv").write_text(good + "main-captions\tMSRvid\t2012test\t0002\tfive\n")
    with pytest.raises(DatasetError, match=r"sts-test.csv:2: expected a score and two sentences"):
        load_sts(tmp_path)
    with pytest.raises(DatasetError, match="sts-dev.csv"):
        load_sts(tmp_path, split="dev")
