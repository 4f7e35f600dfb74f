"""`make demo`'s questions, asked of the project's own docs as the demo does: every answer is
non-empty and cited, and every citation checks out."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from embedstack import Collection

ROOT = Path(__file__).resolve().parents[2]
_ASK = re.compile(r"embedstack ask \$\(DEMO\) (.*)")


def demo_questions() -> list[tuple[str, str]]:
    """(question, mode) for each `embedstack ask` line of the Makefile's demo target."""
    asked = []
    for line in (ROOT / "Makefile").read_text().splitlines():
        if match := _ASK.search(line):
            words = shlex.split(match[1])
            mode = words[words.index("--mode") + 1] if "--mode" in words else "auto"
            asked.append((words[0], mode))
    return asked


@pytest.fixture(scope="module")
def demo_kb(tmp_path_factory, model):
    kb = Collection.open(tmp_path_factory.mktemp("demo") / "demo-kb", model)
    kb.ingest([ROOT / "README.md", ROOT / "docs"])
    yield kb
    kb.close()


def test_the_demo_asks_several_questions():
    assert len(demo_questions()) >= 3


@pytest.mark.parametrize(("question", "mode"), demo_questions())
def test_demo_questions_get_non_empty_cited_answers(demo_kb, question, mode):
    answer = demo_kb.ask(question, mode=mode)  # the local SmolLM2 where the mode needs an LLM
    assert answer.grounded and answer.text.strip() and answer.citations
    numbers = {source.number for source in answer.sources}
    assert all(sentence.supported and set(sentence.sources) <= numbers
               for sentence in answer.sentences)  # fmt: skip
    assert {c.number for c in answer.citations} <= numbers
    for item in answer.evidence:
        assert demo_kb.get(item.chunk_id)[0].text[item.start : item.end] == item.text
