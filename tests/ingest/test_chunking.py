"""Chunks fit the model, follow the document's structure, overlap, and keep offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedstack.errors import InvalidInputError
from embedstack.ingest.chunking import Chunker
from embedstack.ingest.documents import Block, Document
from embedstack.ingest.tokens import TokenCounter, token_budget
from embedstack.models import find_spec


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter(find_spec("all-MiniLM-L6-v2").locate() / "tokenizer.json")


def document(*blocks: Block) -> Document:
    return Document.from_blocks(Path("doc.md"), "markdown", blocks)


def sentences(n: int, topic: str) -> str:
    return " ".join(f"Sentence {i} talks about {topic} in some detail." for i in range(n))


def test_no_chunk_is_truncated_by_the_model(counter, model):
    budget = token_budget(model, counter)
    doc = document(
        Block("Intro", heading_path=("Intro",), kind="heading"),
        Block(sentences(80, "rivers"), heading_path=("Intro",)),
        Block("x," * 3000, heading_path=("Intro",)),  # 6,000 tokens, no separator to split on
    )
    chunks = Chunker(counter, budget).split(doc)
    assert len(chunks) > 3
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        with_specials = model._tokenizer._tokenizer.encode(chunk.text)  # truncates at the limit
        untruncated = counter.count([chunk.text])[0] + 2
        assert untruncated <= model.max_tokens
        assert len(with_specials.ids) == untruncated


def test_splits_on_headings_then_paragraphs_then_sentences(counter):
    doc = document(
        Block("Cats", heading_path=("Cats",), kind="heading"),
        Block("Cats purr when content.", heading_path=("Cats",)),
        Block("Cats sleep sixteen hours a day.", heading_path=("Cats",)),
        Block("Dogs", heading_path=("Dogs",), kind="heading"),
        Block(sentences(12, "dogs"), heading_path=("Dogs",)),
    )
    chunks = Chunker(counter, 40).split(doc)
    assert chunks[0].text == "Cats\n\nCats purr when content.\n\nCats sleep sixteen hours a day."
    assert chunks[0].heading_path == ("Cats",)
    dog_chunks = chunks[1:]
    assert all(c.heading_path == ("Dogs",) and "Cats" not in c.text for c in dog_chunks)
    for chunk in dog_chunks[1:]:  # sentence boundaries, not mid-sentence cuts
        assert chunk.text.startswith("Sentence") and chunk.text.endswith(".")
        assert chunk.tokens <= 40


def test_overlap_repeats_the_tail_of_the_previous_chunk(counter):
    doc = document(Block(sentences(30, "weather")))
    chunks = Chunker(counter, 50, overlap=12).split(doc)
    assert len(chunks) > 2
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        assert chunk.start < previous.end  # shared text
        assert doc.text[chunk.start : previous.end].strip()
    no_overlap = Chunker(counter, 50).split(doc)
    assert all(b.start > a.end - 1 for a, b in zip(no_overlap, no_overlap[1:], strict=False))


def test_a_long_single_line_is_cut_by_tokens(counter):
    doc = document(Block("token " * 20000))
    chunks = Chunker(counter, 100, overlap=0).split(doc)
    assert len(chunks) == 200 and all(c.tokens <= 100 for c in chunks)


def test_bad_settings(counter):
    with pytest.raises(InvalidInputError, match="at least 8"):
        Chunker(counter, 4)
    with pytest.raises(InvalidInputError, match="overlap"):
        Chunker(counter, 100, overlap=60)
