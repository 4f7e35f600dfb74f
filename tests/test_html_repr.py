"""What a notebook shows: hits, answers and evaluation reports as escaped HTML tables."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest

from embedstack import Answer, Collection
from embedstack.evaluation import EvalReport, StsPairs, evaluate_sts
from embedstack.html_tables import Html, format_value, hits_table, html_table
from embedstack.rag.attribution import AnswerSentence
from embedstack.types import Chunk, Hit

SCRIPT = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"


def test_html_table_escapes_every_cell_and_rounds_floats():
    rows = [{"name": SCRIPT, "score": 0.123456, "n": 3}, {"name": "b & c", "extra": None}]
    table = html_table(rows, caption="<i>caption</i>")
    assert isinstance(table, Html) and table._repr_html_() == table
    assert SCRIPT not in table and ESCAPED in table
    assert "b &amp; c" in table and "&lt;i&gt;caption&lt;/i&gt;" in table
    assert ">0.1235</td>" in table and ">3</td>" in table
    assert table.count("<th ") == 4  # name, score, n, extra: keys in first-seen order


def test_html_table_of_tuples_and_trusted_markup():
    table = html_table([("a", Html("<b>bold</b>"), 2.0)], ("x", "y", "z"))
    assert "<b>bold</b>" in table and ">2.0000</td>" in table
    assert "<thead>" not in html_table([("a", 1)])


def test_format_value_is_sensible_for_numbers_lists_and_mappings():
    assert format_value(np.float32(0.5)) == "0.5000"
    assert format_value(np.int64(7)) == "7"
    assert format_value(True) == "True" and format_value(None) == ""
    assert format_value(1.5e-7) == "1.5e-07"  # not 0.0000
    assert format_value(float("nan")) == "nan"
    assert format_value([0.1, 2]) == "0.1000, 2"
    assert format_value({"team": "it", "page": 3}) == "team: it; page: 3"


def test_hit_repr_html_escapes_and_shortens():
    text = SCRIPT + " " + "word " * 200
    hit = Hit(Chunk("doc<1>", text, {"source": "a<b>.txt"}), 0.87654321)
    shown = hit._repr_html_()
    assert ESCAPED in shown and SCRIPT not in shown
    assert "doc&lt;1&gt;" in shown and "a&lt;b&gt;.txt" in shown and ">0.8765</td>" in shown
    assert "…" in shown and "word " * 100 not in shown  # cut to about 300 characters


def test_hits_table_ranks_every_hit():
    hits = [Hit(Chunk(f"d{n}", f"text {n}"), 1.0 / (n + 1)) for n in range(3)]
    table = hits_table(hits, caption="query")
    assert table.count("<tr>") == 4  # the header and three hits
    assert all(f"d{n}" in table for n in range(3)) and "<caption>query</caption>" in table


def test_eval_report_is_the_dict_it_was():
    metrics = {"spearman": 0.81234567, "n_pairs": 3, "model": "m<1>", "backend": "onnx"}
    report = EvalReport(metrics, task="STS", data="data/<sts>")
    assert report == metrics and isinstance(report, dict)
    assert json.loads(json.dumps(report)) == metrics
    again = pickle.loads(pickle.dumps(report))
    assert again == metrics and again.title == report.title
    assert copy.deepcopy(report).data == "data/<sts>"
    shown = report._repr_html_()
    assert "spearman" in shown and ">0.8123</td>" in shown and "n_pairs" in shown
    assert "STS · data/&lt;sts&gt; · m&lt;1&gt; (onnx)" in shown
    assert EvalReport().title == ""


def test_evaluate_sts_returns_a_report(model):
    pairs = StsPairs(
        ["A man plays guitar.", "A cat sleeps.", "Stocks fell sharply."],
        ["Someone plays a guitar.", "A dog runs in a park.", "It rained all day."],
        np.array([4.8, 1.0, 0.2]),
    )
    report = evaluate_sts(pairs, model)
    assert isinstance(report, EvalReport) and report["n_pairs"] == 3
    shown = report._repr_html_()
    assert "spearman" in shown and model.name in shown and model.backend in shown


@pytest.fixture(scope="module")
def kb(tmp_path_factory, model):
    collection = Collection.open(tmp_path_factory.mktemp("html") / "kb", model)
    texts = {
        "printer": "The printer on floor two jams when paper is loaded crooked.",
        "coffee": "The coffee machine in the kitchen needs descaling every month.",
        "markup": f"Never paste {SCRIPT} into the wiki editor.",
    }
    metadata = [{"source": f"{name}.txt"} for name in texts]
    collection.add(list(texts.values()), ids=list(texts), metadata=metadata)
    yield collection
    collection.close()


def test_extractive_answer_shows_its_citation_and_evidence(kb):
    answer = kb.ask("Why does the printer jam?", mode="extractive")
    shown = answer._repr_html_()
    assert answer.citations[0].chunk_id == "printer"
    assert "printer.txt" in shown and "Sources" in shown and "Evidence" in shown
    assert "loaded crooked" in shown and "[1]" in shown and "extractive" in shown
    assert SCRIPT not in shown  # the markup record, if retrieved, is escaped


def test_search_hits_table_escapes_stored_markup(kb):
    table = hits_table(kb.search("what not to paste into the wiki", k=3))
    assert ESCAPED in table and SCRIPT not in table


def test_answer_marks_unsupported_sentences_and_fallback():
    answer = Answer(
        question=f"Who? {SCRIPT}",
        text="The sky is green.",
        sentences=[AnswerSentence("The sky is green.", False, 0.2, reason="no source says <this>")],
        fallback="the LLM failed: <timeout>",
        mode="generative",
        llm="openai:test",
    )
    shown = answer._repr_html_()
    assert ESCAPED in shown and SCRIPT not in shown
    assert "<s " in shown and "no source says &lt;this&gt;" in shown
    assert "Fallback: the LLM failed: &lt;timeout&gt;" in shown and "openai:test" in shown
