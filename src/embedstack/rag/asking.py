"""`ask`: rewrite (with history) → retrieve → ground check → evidence sentences → answer
(quoted, or written by an LLM from the evidence and checked sentence by sentence)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from embedstack.errors import InvalidInputError, LLMError
from embedstack.models.base import EmbeddingModel
from embedstack.rag.answer import Answer, Citation, marked
from embedstack.rag.attribution import AnswerSentence, attribute, split_answer
from embedstack.rag.evidence import (
    Evidence,
    Sentences,
    content_words,
    highlight,
    numbers,
    rank_evidence,
    split_sources,
)
from embedstack.rag.llm import ChatModel, ContextWindowError, Message
from embedstack.rag.prompt import NO_ANSWER, build_prompt, source_label
from embedstack.sentences import sentence_spans
from embedstack.types import Chunk, Hit

# Retrieval as RAG sees it: (query, k) -> hits, best first, with a "dense" stage score.
Retrieve = Callable[[str, int], list[Hit]]

MODES = ("auto", "extractive", "generative")
# Cosine similarity of the best chunk below which the documents are taken to say nothing about
# the question. Calibrated for all-MiniLM-L6-v2 on the SEC 10-Q questions against off-topic
# questions (docs/benchmarks.md); pass `min_relevance` for other models.
DEFAULT_MIN_RELEVANCE = 0.3
MAX_QUESTION_CHARS = 4000  # a question, not a document: longer ones are refused
# An extractive answer quotes the best sentence of each of the best EXTRACT_SOURCES sources,
# leaving out sentences scoring more than EXTRACT_MARGIN below the best (docs/benchmarks.md).
EXTRACT_SOURCES = 4
EXTRACT_MARGIN = 0.3
EVIDENCE_SHOWN = 5  # evidence sentences every answer carries
# Per source, what the LLM reads instead of the whole chunk: its best sentence. SEC prompts of
# 425 tokens (median) instead of 627 with two sentences, 2,000 with whole chunks; on 2 AVX2
# cores SmolLM2 reads them in ~1.8 s (docs/benchmarks.md), within the 3 s an answer may take.
PROMPT_SENTENCES = 1
REWRITE_SYSTEM = (
    "Rewrite the user's last question as one standalone question that can be understood "
    "without the conversation. Reply with the question only."
)
HISTORY_TURNS = 6  # messages of history used to rewrite a follow-up question


class AnswerStream:
    """Iterate for the answer's text as it is generated; `.answer` is complete afterwards."""

    def __init__(self, pieces: Iterator[str], finish: Callable[[str], Answer]) -> None:
        self._pieces = pieces
        self._finish = finish
        self._when_done: list[Callable[[Answer], None]] = []
        self.answer: Answer | None = None

    def when_done(self, callback: Callable[[Answer], None]) -> AnswerStream:
        """Call `callback(answer)` once the whole answer has been generated."""
        self._when_done.append(callback)
        return self

    def close(self) -> None:
        """Stop generating: the LLM's stream is closed now, not when garbage is collected."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    def __iter__(self) -> Iterator[str]:
        collected: list[str] = []
        try:
            for piece in self._pieces:
                collected.append(piece)
                yield piece
        finally:
            self.close()  # a reader that stops early ends the generation (and the LLM's turn)
        self.answer = self._finish("".join(collected))
        for callback in self._when_done:
            callback(self.answer)


def ask(
    retrieve: Retrieve,
    question: str,
    llm: Callable[[], ChatModel],
    model: EmbeddingModel,
    *,
    mode: str = "auto",
    k: int = 5,
    stream: bool = False,
    history: Sequence[Message] = (),
    min_relevance: float = DEFAULT_MIN_RELEVANCE,
    answer_tokens: int = 256,
) -> Answer | AnswerStream:
    """Answer `question` from what `retrieve` finds, citing it; see `Collection.ask`.

    `llm` is called only when an LLM is needed (never for `mode="extractive"`); `model` is the
    embedding model that ranks and checks sentences. When no hit has a dense score of at least
    `min_relevance` (a keyword-only retriever has none), the documents are taken to say nothing.
    """
    check_question(question)
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    started = time.perf_counter()
    # The LLM is loaded only once it is needed: not for quotes, nor when nothing is relevant.
    chat = llm() if mode != "extractive" and history else None
    search_query = rewrite(question, history, chat) if history else question
    hits = [hit for hit in retrieve(search_query, k) if sentence_spans(hit.text)]
    best = max((h.scores_by_stage.get("dense", -1.0) for h in hits), default=-1.0)
    base = Answer(question, NO_ANSWER, grounded=False, search_query=search_query,
                  raw_text=NO_ANSWER)  # fmt: skip
    if not hits or best < min_relevance:
        return _done(replace(base, seconds=time.perf_counter() - started), stream)
    labels = [source_label(hit) for hit in hits]
    sentences = split_sources(hits, model)
    evidence = rank_evidence(question, sentences, model, labels)
    if not evidence:  # headings and labels only: nothing that states anything
        return _done(replace(base, seconds=time.perf_counter() - started), stream)
    numbered = [Citation.from_hit(n, hit) for n, hit in enumerate(hits, start=1)]
    base = replace(base, grounded=True, evidence=evidence[:EVIDENCE_SHOWN], sources=numbered,
                   raw_text="")  # fmt: skip

    def quoted(reason: str = "") -> Answer:
        answer = extractive(base, evidence, hits, reason)
        return replace(answer, seconds=time.perf_counter() - started)

    if mode == "extractive":
        return _done(quoted(), stream)
    writer = chat or llm()
    base = replace(base, llm=writer.name)
    prompt = build_prompt(question, excerpts(hits, evidence), writer, answer_tokens)
    failure: list[LLMError] = []

    def generate() -> Iterator[str]:
        """The reply; when the endpoint says the prompt is too long (its tokens are only
        estimated here), the lowest-ranked source is dropped and the LLM asked again. In
        "auto" mode an LLM that fails is noted and the answer quotes the sources instead."""
        nonlocal prompt
        while True:
            try:
                if mode == "auto":  # streamed, to stop at the first unsupported sentence
                    yield from until_unsupported(writer.stream(prompt.messages, answer_tokens))
                elif stream:
                    yield from writer.stream(prompt.messages, answer_tokens)
                else:
                    yield writer.chat(prompt.messages, answer_tokens)
                return
            except ContextWindowError:
                if len(prompt.sources) <= 1:
                    raise
                prompt = build_prompt(question, prompt.sources[:-1], writer, answer_tokens)
            except LLMError as exc:
                if mode != "auto":
                    raise
                failure.append(exc)
                return

    def until_unsupported(pieces: Iterator[str]) -> Iterator[str]:
        """The pieces until a finished sentence fails the check, then no more: "auto" would
        discard the rest, and the LLM stops writing it (the stream is closed)."""
        text, checked = "", 0
        seen = _of_sources(sentences, len(prompt.sources))
        try:
            for piece in pieces:
                yield piece
                text += piece
                finished = split_answer(text)[:-1]  # the last may still be growing
                for sentence, _ in finished[checked:]:
                    verdict = attribute(sentence, question, seen, model, labels=labels)
                    if not verdict[0].supported:
                        return
                checked = len(finished)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def finish(raw: str) -> Answer:
        if failure:
            return quoted(f"the LLM failed: {failure[0]}")
        given = len(prompt.sources)
        seen = _of_sources(sentences, given)
        checked = attribute(raw, question, seen, model, labels=labels[:given])
        if mode == "auto" and (not checked or not all(s.supported for s in checked)):
            why = "the LLM gave an empty answer" if not checked else (
                "the LLM's answer is not supported by the sources: " +
                next(s.reason for s in checked if not s.supported))  # fmt: skip
            return replace(quoted(why), raw_text=raw)
        if mode == "auto" and (
            dodged := dodges(question, " ".join(s.text for s in checked), prompt.sources)
        ):
            return replace(quoted(dodged), raw_text=raw)
        if mode == "auto" and (strayed := strays(checked, evidence, given)):
            return replace(quoted(strayed), raw_text=raw)
        cited = list(dict.fromkeys(n for s in checked for n in s.sources))
        return replace(
            base, text=" ".join(marked(s.text, s.sources) for s in checked),
            citations=[Citation.from_hit(n, hits[n - 1]) for n in cited],
            sources=base.sources[:given], mode="generative", sentences=checked,
            evidence=[e for e in evidence if e.source <= given][:EVIDENCE_SHOWN],
            dropped_citations=sorted({n for s in checked for n in s.written if n not in s.sources}),
            raw_text=raw, seconds=time.perf_counter() - started,
        )  # fmt: skip

    if stream:
        return AnswerStream(generate(), finish)
    return finish("".join(generate()))


def check_question(question: object) -> None:
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidInputError(
            f"the question is {len(question):,} characters; at most {MAX_QUESTION_CHARS:,} "
            "(search the collection for a passage instead)"
        )


def _done(answer: Answer, stream: bool) -> Answer | AnswerStream:
    return AnswerStream(iter([answer.text]), lambda _: answer) if stream else answer


def extractive(base: Answer, evidence: list[Evidence], hits: list[Hit], reason: str) -> Answer:
    """An answer made of quoted sentences: the best sentence of each of the best sources (the
    same sentence in several sources, as boilerplate repeats across filings, is quoted once)."""
    chosen: list[Evidence] = []
    quoted: dict[str, list[int]] = {}
    for item in evidence:
        if item.score < evidence[0].score - EXTRACT_MARGIN or len(chosen) == EXTRACT_SOURCES:
            break
        if any(item.source == c.source for c in chosen):
            continue
        chosen.append(item)
        quoted.setdefault(" ".join(item.text.split()), []).append(item.source)
    sentences = [AnswerSentence(text, True, 1.0, sources, [], text)
                 for text, sources in quoted.items()]  # fmt: skip
    return replace(
        base, text=" ".join(marked(s.text, s.sources) for s in sentences),
        citations=[Citation.from_hit(e.source, hits[e.source - 1]) for e in chosen],
        mode="extractive", sentences=sentences, fallback=reason,
    )  # fmt: skip


def excerpts(hits: list[Hit], evidence: list[Evidence]) -> list[Hit]:
    """Each source cut to its best PROMPT_SENTENCES sentences, in their order in the chunk: on
    a CPU without AVX-512, llama.cpp reads ~230 prompt tokens a second, so whole chunks would
    cost SmolLM2 ~9 s an answer (docs/benchmarks.md)."""
    out = []
    for number, hit in enumerate(hits, start=1):
        best = sorted([e for e in evidence if e.source == number], key=lambda e: -e.score)
        kept = sorted(best[:PROMPT_SENTENCES], key=lambda e: e.start)
        text = " … ".join(" ".join(e.text.split()) for e in kept) or hit.text
        out.append(Hit(Chunk(hit.id, text, hit.metadata), hit.score, hit.scores_by_stage))
    return out


def dodges(question: str, answer: str, given: list[Hit]) -> str:
    """Why `answer` does not answer, or "": the question asks for an amount, a date or a name,
    the sources the LLM read state some, and the answer states none of them ("iPhone revenue
    grew, as the data shows" for "how much iPhone revenue?"). Such a sentence passes the
    check, as it says nothing false, but it answers nothing: "auto" quotes the sources instead
    (on the SEC questions, 6 of 17 LLM answers kept lost the gold figure the quotes held)."""
    wanted = [hit.text[a:b] for hit in given for a, b in highlight(question, hit.text)]
    stated, words = numbers(answer), content_words(answer)
    if not wanted or any(
        numbers(value) & stated if numbers(value) else content_words(value) & words
        for value in wanted
    ):
        return ""
    return f"the LLM's answer states none of what the question asks for (a source: {wanted[0]!r})"


def strays(checked: list[AnswerSentence], evidence: list[Evidence], given: int) -> str:
    """Why `checked` leaves out the source that best answers the question, or "". Every
    sentence may be true of some source and the answer still be about something else: on the
    SEC questions, 3 of the 15 LLM answers kept by the checks above drew only on lesser sources
    ("the new risk factor mentioned in the first sentence is COVID-19"), and none was better
    than quoting the best one (docs/benchmarks.md). "auto" quotes the sources instead."""
    best = next((item.source for item in evidence if item.source <= given), None)
    if best is None or any(best in sentence.sources for sentence in checked):
        return ""
    return f"the LLM's answer does not draw on source [{best}], the one that best answers"


def _of_sources(sentences: Sentences, count: int) -> Sentences:
    """The sentences of sources 1..count (those the prompt held)."""
    keep = [i for i, unit in enumerate(sentences.units) if unit.source <= count]
    return Sentences([sentences.units[i] for i in keep], sentences.vectors[keep])


def rewrite(question: str, history: Sequence[Message], llm: ChatModel | None) -> str:
    """A follow-up ("and in 2022?") made standalone with the conversation, for retrieval.

    Small local models rewrite unreliably, so a reply that is empty or rambles (or no LLM, in
    extractive mode) falls back to the previous question joined with this one, which still
    retrieves on the right topic.
    """
    turns = [m for m in history if m.get("role") in ("user", "assistant")][-HISTORY_TURNS:]
    messages = [{"role": "system", "content": REWRITE_SYSTEM}, *turns,
                {"role": "user", "content": question}]  # fmt: skip
    rewritten = " ".join(llm.chat(messages, 64).split()) if llm else ""
    if rewritten and len(rewritten) <= 3 * len(question) + 200:
        return rewritten
    previous = [m["content"] for m in turns if m["role"] == "user"]
    return f"{previous[-1]} {question}" if previous else question
