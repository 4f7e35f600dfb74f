"""Evidence sentences, extractive answers and verified citations, on the real default model."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from embedstack import Collection
from embedstack.errors import InvalidInputError, LLMError
from embedstack.rag.asking import dodges, strays
from embedstack.rag.attribution import AnswerSentence, attribute, miscompared, split_answer
from embedstack.rag.evidence import Evidence, highlight, rank_evidence, split_sources
from embedstack.rag.loader import load_llm
from embedstack.sentences import sentence_spans
from embedstack.types import Chunk, Hit

# A filing page as the PDF loader gives it: prose wrapped at a fixed width, then a table.
FILING = (
    "Net sales disaggregated by significant products and services for the three-month\n"
    "periods ended July 1, 2023 and June 25, 2022 were as follows (in millions). The\n"
    "Company's net sales fell in the quarter.\n"
    "Three Months Ended\n"
    "iPhone $ 39,669 $ 40,665\n"
    "Mac 6,840 7,382\n"
    "Total net sales $ 81,797 $ 82,959"
)
NOTES = {
    "filing": FILING,
    "onnx": "Exported ONNX files are cached in ~/.cache/embedstack/onnx. Each file is keyed by "
    "the model's hash, so a second run loads it at once. Delete the folder to rebuild.",
    "crash": "Every write goes through SQLite in WAL mode. A crash mid-write leaves the last "
    "committed state intact; the next open replays the log.",
    "team": "Ada Lovelace leads the storage team. She joined in March 2021.",
}


@pytest.fixture(scope="module")
def kb(tmp_path_factory, model):
    collection = Collection.open(tmp_path_factory.mktemp("evidence") / "kb", model)
    collection.add(list(NOTES.values()), ids=list(NOTES))
    yield collection
    collection.close()


def test_sentences_keep_wrapped_prose_whole_and_split_table_rows():
    spans = [FILING[s:e] for s, e in sentence_spans(FILING)]
    assert spans[0].startswith("Net sales disaggregated") and spans[0].endswith("(in millions).")
    assert "\n" in spans[0]  # a wrapped line goes on: one sentence across two lines
    assert spans[1] == "The\nCompany's net sales fell in the quarter."
    assert spans[-1] == "Total net sales $ 81,797 $ 82,959"
    assert "Mac 6,840 7,382" in spans and "Three Months Ended" in spans
    markdown = "# Setup\n\n- install it with make install\n- run the tests with make test"
    assert [markdown[s:e] for s, e in sentence_spans(markdown)] == [
        "- install it with make install", "- run the tests with make test"
    ]  # fmt: skip
    assert sentence_spans("") == [] and sentence_spans("2023\nJune 25,") == []


def test_the_figure_a_question_asks_for_is_highlighted():
    text = "Total net sales $ 81,797 $ 82,959 in Note 10, up 5 % in 2023"
    found = [text[s:e] for s, e in highlight("What were total net sales in 2023?", text)]
    assert found == ["$ 81,797", "$ 82,959", "5 %"]  # not the note number, not the year asked
    when = "Ada joined in March 2021 and left on June 3, 2024."
    assert [when[s:e] for s, e in highlight("When did Ada leave?", when)] == [
        "2021", "June 3, 2024"
    ]  # fmt: skip
    who = NOTES["team"]
    found = [who[s:e] for s, e in highlight("Who leads the storage team?", who)]
    assert found == ["Ada Lovelace"]  # not "She" opening a sentence, not the month
    assert highlight("Is the cache safe to delete?", text) == []


def test_an_answer_without_the_figure_asked_for_dodges_the_question():
    """Auto mode keeps an LLM answer only when it states what the question asks for and the
    sources hold: an amount, a date, a name; questions asking for none of these pass."""
    sources = [Hit(Chunk(key, NOTES[key]), 0.9) for key in ("filing", "team", "onnx")]
    question = "What were total net sales in the quarter?"
    why = dodges(question, "The Company's net sales fell in the quarter.", sources)
    assert "states none of what the question asks for" in why and "$ 39,669" in why
    assert dodges(question, "Total net sales were $81,797 million.", sources) == ""
    assert dodges(question, "Net sales were 82,959 million dollars.", sources) == ""
    assert dodges(question, "Net sales were $1 billion.", sources)  # a figure, not theirs
    who = "Who leads the storage team?"
    assert dodges(who, "The storage team has a leader.", sources)
    assert dodges(who, "Ada Lovelace leads it.", sources) == ""
    assert dodges("Where are ONNX files cached?", "In the cache folder.", sources) == ""
    assert dodges(question, "Sales fell.", [Hit(Chunk("onnx", NOTES["onnx"]), 0.9)]) == ""


def test_extractive_answers_quote_stored_text_exactly(kb):
    answer = kb.ask("Where are ONNX files cached?", mode="extractive")
    assert answer.mode == "extractive" and answer.llm == "" and answer.grounded
    assert answer.citations[0].chunk_id == "onnx" and answer.text.startswith(
        "Exported ONNX files are cached in ~/.cache/embedstack/onnx [1]."
    )
    assert answer.evidence and answer.evidence[0].chunk_id == "onnx"
    for item in answer.evidence:
        stored = kb.get(item.chunk_id)[0].text
        assert stored[item.start : item.end] == item.text  # offsets into the stored chunk
        assert answer.sources[item.source - 1].chunk_id == item.chunk_id
    for sentence in answer.sentences:
        assert sentence.supported and " ".join(sentence.quote.split()) == sentence.text
        assert any(sentence.text in " ".join(kb.get(answer.sources[n - 1].chunk_id)[0].text.split())
                   for n in sentence.sources)  # fmt: skip
    figures = kb.ask("What were total net sales in the quarter?", mode="extractive")
    best = figures.evidence[0]
    assert best.text == "Total net sales $ 81,797 $ 82,959"
    assert best.highlighted() == "Total net sales **$ 81,797** **$ 82,959**"
    assert "$ 81,797" in figures.text


def test_attribution_marks_an_invented_sentence_unsupported_and_a_copied_one_supported(kb):
    question = "Where are ONNX files cached?"
    hits = kb.search(question, k=4)
    sentences = split_sources(hits, kb.model)
    source = next(n for n, hit in enumerate(hits, start=1) if hit.id == "onnx")
    answer = (
        "Exported ONNX files are cached in ~/.cache/embedstack/onnx [1]. "  # copied
        "Each file is keyed by the model's hash. "  # copied, no citation written
        "The cache is uploaded to Amazon S3 every night [2]. "  # invented
        "Exported ONNX files are cached in 3 folders."  # a number no source has
    )
    checked = attribute(answer, question, sentences, kb.model)
    assert [c.supported for c in checked] == [True, True, False, False]
    assert checked[0].sources[0] == source and checked[1].sources[0] == source
    assert checked[0].written == [1] and checked[2].written == [2]
    assert checked[2].reason.startswith("no source sentence says this")
    assert checked[3].reason == "3 not in the sources"
    named = attribute("Grace Hopper leads the storage team.", "Who leads the storage team?",
                      split_sources(kb.search("Who leads the storage team?", k=2), kb.model),
                      kb.model, threshold=0.5)  # fmt: skip
    assert not named[0].supported and named[0].reason == "grace, hopper not in the sources"
    assert split_answer("Yes [1]. It is [2, 3].\n[4]") == [("Yes.", [1]), ("It is.", [2, 3, 4])]


def test_a_sentence_that_gets_its_own_figures_backwards_is_unsupported(kb):
    """Both figures are in the filing; the comparison between them is false."""
    question = "What were total net sales in the quarter?"
    sentences = split_sources(kb.search(question, k=2), kb.model)
    wrong, right = attribute(
        "Total net sales were $81,797 million, higher than the $82,959 million a year before. "
        "Total net sales were $81,797 million, lower than the $82,959 million a year before.",
        question, sentences, kb.model,
    )  # fmt: skip
    assert right.supported and not wrong.supported
    assert wrong.reason == "$81,797 million against $82,959 million: not higher"
    assert miscompared("iPhone sales fell from $ 40,665 to $ 39,669.") == ""
    assert miscompared("iPhone sales rose from $ 40,665 to $ 39,669.").endswith("not up")
    assert miscompared("The rate of 2.1% is above 21% and higher than 0.5%.") == ""
    assert miscompared("At 2.1%, the rate is higher than 21%.") == "2.1% against 21%: not higher"
    assert miscompared("$3.2 billion is more than $900 million.") == ""  # scale words count
    assert miscompared("Sales in 2023 were lower than in 2022.") == ""  # years: not amounts
    assert miscompared("Costs came in $3 million more than the $10 million planned.") == ""


def test_an_answer_that_leaves_out_the_best_source_strays():
    evidence = [
        Evidence(2, "b", 0, 10, "Best line.", 0.8),
        Evidence(1, "a", 0, 9, "Next one.", 0.7),
    ]
    uses = [AnswerSentence("It says the best line.", True, 0.9, [2, 1])]
    elsewhere = [AnswerSentence("It says the next one.", True, 0.9, [1])]
    assert strays(uses, evidence, given=2) == ""
    assert strays(elsewhere, evidence, given=2).endswith("source [2], the one that best answers")
    assert strays(elsewhere, evidence, given=1) == ""  # the LLM never read source 2


def test_ranking_prefers_the_sentence_that_names_what_was_asked(kb):
    question = "What were total net sales in the quarter?"
    hits = kb.search(question, k=4)
    ranked = rank_evidence(question, split_sources(hits, kb.model), kb.model)
    assert ranked[0].text == "Total net sales $ 81,797 $ 82,959"
    assert ranked == sorted(ranked, key=lambda e: -e.score)


def test_bad_questions_are_refused_and_change_nothing(kb, tmp_path, model):
    before = (kb.count(), kb.folder.joinpath("embedstack.db").stat().st_mtime_ns)
    for question in ["   \n\t", "x" * 100_000]:
        with pytest.raises(InvalidInputError, match="empty|100,000 characters; at most 4,000"):
            kb.ask(question, mode="extractive")
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        kb.ask("Where are ONNX files cached?", mode="creative")
    assert (kb.count(), kb.folder.joinpath("embedstack.db").stat().st_mtime_ns) == before
    empty = Collection.open(tmp_path / "empty", model)
    try:
        for mode in ("extractive", "auto"):
            answer = empty.ask("Where are ONNX files cached?", mode=mode)
            assert not answer.grounded and answer.text == "The documents do not say."
        empty.add(["12 34", "-- --", "Other Legal Proceedings"], ids=["digits", "dashes", "title"])
        for question in ("What is 12 34?", "Any other legal proceedings?"):
            assert not empty.ask(question, mode="extractive", min_relevance=-1).grounded
    finally:
        empty.close()


@pytest.fixture(scope="module")
def hanging_endpoint():
    """An OpenAI-compatible endpoint on 127.0.0.1 that accepts and never answers."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            release.wait(60)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    release.set()
    httpd.shutdown()


def test_an_llm_that_hangs_times_out_and_auto_quotes_the_sources(kb, hanging_endpoint):
    llm = load_llm("openai:stuck", base_url=hanging_endpoint, timeout=1)
    started = time.perf_counter()
    answer = kb.ask("Where are ONNX files cached?", llm=llm)
    assert time.perf_counter() - started < 10
    assert answer.mode == "extractive" and answer.citations[0].chunk_id == "onnx"
    assert answer.fallback.startswith("the LLM failed") and "timed out" in answer.fallback
    with pytest.raises(LLMError, match="timed out"):
        kb.ask("Where are ONNX files cached?", llm=llm, mode="generative")
