"""Training pairs from a collection that has no labels: each chunk gets queries made from itself.

Three sources, each a known recipe for unsupervised dense retrieval:
- "title": the chunk's heading or its document's title, as a query for the chunk (titles are
  the short, query-like summaries authors already wrote);
- "ict": the inverse cloze task (Lee et al., 2019): one sentence of the chunk is the query and
  the rest of the chunk, without it, is the positive, so the model learns context, not overlap;
- "llm": a question an LLM writes for the chunk (as in LlamaIndex's fine-tuning recipe and
  GPL), the closest to real queries but the slowest: ~1-3 s per chunk with the local SmolLM2,
  so it runs on a sample of `llm_limit` chunks.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence

from embedstack.collection import Collection
from embedstack.errors import DatasetError, LLMError
from embedstack.progress import progress_bar
from embedstack.rag.llm import ChatModel
from embedstack.sentences import sentence_spans
from embedstack.training.pairs import TrainingPair
from embedstack.types import Chunk

SOURCES = ("title", "ict", "llm")
MIN_TITLE_WORDS = 3  # "Introduction" or "Results" says nothing about one chunk
MIN_ICT_WORDS = 6
MIN_REST_WORDS = 20  # the positive must keep enough context to be found by
READ_BATCH = 1000
QUESTION_PROMPT = (
    "Write one question that a reader could answer from this passage. "
    "Reply with the question only.\n\nPassage:\n{passage}"
)
PASSAGE_CHARS = 1500  # what the question is written from: keeps the local LLM's prompt short


def collection_chunks(collection: Collection) -> list[Chunk]:
    ids = collection.ids()
    if not ids:
        raise DatasetError(f"{collection.folder} is empty: there is nothing to make queries from")
    chunks: list[Chunk] = []
    for start in range(0, len(ids), READ_BATCH):
        chunks.extend(collection.get(ids[start : start + READ_BATCH]))
    return chunks


def title_pairs(chunks: Iterable[Chunk]) -> list[TrainingPair]:
    """(heading or title, chunk): the last heading is the most specific label a chunk has."""
    pairs = []
    for chunk in chunks:
        heading = str(chunk.metadata.get("heading") or "").rsplit(" > ", 1)[-1]
        title = heading or str(chunk.metadata.get("title") or "")
        if len(title.split()) >= MIN_TITLE_WORDS and title.strip() != chunk.text.strip():
            pairs.append(TrainingPair(title.strip(), chunk.text, source="title"))
    return pairs


def ict_pairs(chunks: Iterable[Chunk], seed: int = 0) -> list[TrainingPair]:
    """(one sentence, the chunk without it), the sentence drawn at random per chunk."""
    rng = random.Random(seed)
    pairs = []
    for chunk in chunks:
        text = chunk.text
        spans = [s for s in sentence_spans(text) if len(text[s[0] : s[1]].split()) >= MIN_ICT_WORDS]
        if not spans:
            continue
        start, end = rng.choice(spans)
        rest = (text[:start] + " " + text[end:]).strip()
        if len(rest.split()) >= MIN_REST_WORDS:
            pairs.append(TrainingPair(text[start:end], rest, source="ict"))
    return pairs


def llm_pairs(
    chunks: Sequence[Chunk],
    llm: ChatModel,
    limit: int,
    seed: int = 0,
    show_progress: bool = False,
) -> list[TrainingPair]:
    """A question written by `llm` for each of `limit` chunks drawn at random."""
    picked = random.Random(seed).sample(list(chunks), min(limit, len(chunks)))
    pairs = []
    with progress_bar(
        len(picked), "Writing questions", enabled=show_progress, unit="chunks"
    ) as advance:
        for chunk in picked:
            question = ask_for_question(llm, chunk.text)
            if question:
                pairs.append(TrainingPair(question, chunk.text, source="llm"))
            advance(1)
    return pairs


def ask_for_question(llm: ChatModel, passage: str) -> str | None:
    """The LLM's question, cleaned; None when it wrote no question (small models ramble)."""
    prompt = QUESTION_PROMPT.format(passage=passage[:PASSAGE_CHARS])
    try:
        reply = llm.chat([{"role": "user", "content": prompt}], max_tokens=48)
    except LLMError:
        return None
    line = next((part.strip() for part in reply.splitlines() if part.strip()), "")
    line = re.sub(r"^(question|q)\s*[:.]\s*", "", line, flags=re.IGNORECASE).strip(" \"'")
    if "?" not in line or len(line.split()) < 3:
        return None
    return line[: line.index("?") + 1]


def pseudo_pairs(
    chunks: Sequence[Chunk],
    sources: Sequence[str] = ("title", "ict"),
    *,
    llm: Callable[[], ChatModel] | None = None,
    llm_limit: int = 200,
    seed: int = 0,
    show_progress: bool = False,
) -> list[TrainingPair]:
    """Pairs from `chunks` (see `collection_chunks`), from the `sources` asked for (SOURCES)."""
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise DatasetError(f"unknown pseudo-query source {unknown[0]!r}; choose from {SOURCES}")
    pairs: list[TrainingPair] = []
    if "title" in sources:
        pairs += title_pairs(chunks)
    if "ict" in sources:
        pairs += ict_pairs(chunks, seed)
    if "llm" in sources:
        if llm is None:
            raise DatasetError("pseudo-queries from an LLM need an LLM (--llm)")
        pairs += llm_pairs(chunks, llm(), llm_limit, seed, show_progress)
    if not pairs:
        raise DatasetError(
            "no pseudo-queries could be made: the chunks have no titles or headings and too "
            "few sentences"
        )
    return pairs
