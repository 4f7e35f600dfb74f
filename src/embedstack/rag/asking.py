"""`ask`: rewrite (with history) → retrieve → ground check → prompt → generate → cite."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from embedstack.errors import InvalidInputError
from embedstack.rag.answer import Answer, Citation, resolve_citations
from embedstack.rag.llm import ChatModel, ContextWindowError, Message
from embedstack.rag.prompt import NO_ANSWER, build_prompt
from embedstack.types import Hit

# Retrieval as RAG sees it: (query, k) -> hits, best first, with a "dense" stage score.
Retrieve = Callable[[str, int], list[Hit]]

# Cosine similarity of the best chunk below which the documents are taken to say nothing about
# the question. Calibrated for all-MiniLM-L6-v2 on the SEC 10-Q questions against off-topic
# questions (docs/benchmarks.md); pass `min_relevance` for other models.
DEFAULT_MIN_RELEVANCE = 0.3
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

    def __iter__(self) -> Iterator[str]:
        collected: list[str] = []
        for piece in self._pieces:
            collected.append(piece)
            yield piece
        self.answer = self._finish("".join(collected))
        for callback in self._when_done:
            callback(self.answer)


def ask(
    retrieve: Retrieve,
    question: str,
    llm: ChatModel,
    *,
    k: int = 5,
    stream: bool = False,
    history: Sequence[Message] = (),
    min_relevance: float = DEFAULT_MIN_RELEVANCE,
    answer_tokens: int = 256,
) -> Answer | AnswerStream:
    """Answer `question` from what `retrieve` finds, citing it; see `Collection.ask`.

    When no hit has a dense score of at least `min_relevance` (a keyword-only retriever
    has none), the documents are taken to say nothing and the LLM is not called.
    """
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError("the question is empty")
    started = time.perf_counter()
    search_query = rewrite(question, history, llm) if history else question
    hits = retrieve(search_query, k)
    best = max((h.scores_by_stage.get("dense", -1.0) for h in hits), default=-1.0)
    if best < min_relevance:
        no_answer = Answer(question, NO_ANSWER, grounded=False, search_query=search_query,
                           raw_text=NO_ANSWER, llm=llm.name)  # fmt: skip
        no_answer.seconds = time.perf_counter() - started
        return AnswerStream(iter([NO_ANSWER]), lambda _: no_answer) if stream else no_answer
    prompt = build_prompt(question, hits, llm, answer_tokens)

    def generate() -> Iterator[str]:
        """The reply; when the endpoint says the prompt is too long (its tokens are only
        estimated here), the lowest-ranked source is dropped and the LLM asked again."""
        nonlocal prompt
        while True:
            try:
                if stream:
                    yield from llm.stream(prompt.messages, answer_tokens)
                else:
                    yield llm.chat(prompt.messages, answer_tokens)
                return
            except ContextWindowError:
                if len(prompt.sources) <= 1:
                    raise
                prompt = build_prompt(question, prompt.sources[:-1], llm, answer_tokens)

    def finish(raw: str) -> Answer:
        text, citations, invented = resolve_citations(raw, prompt.sources)
        return Answer(
            question, text, citations,
            sources=[Citation.from_hit(n, h) for n, h in enumerate(prompt.sources, start=1)],
            search_query=search_query, dropped_citations=invented, raw_text=raw, llm=llm.name,
            seconds=time.perf_counter() - started,
        )  # fmt: skip

    if stream:
        return AnswerStream(generate(), finish)
    return finish("".join(generate()))


def rewrite(question: str, history: Sequence[Message], llm: ChatModel) -> str:
    """A follow-up ("and in 2022?") made standalone with the conversation, for retrieval.

    Small local models rewrite unreliably, so a reply that is empty or rambles falls back to
    the previous question joined with this one, which still retrieves on the right topic.
    """
    turns = [m for m in history if m.get("role") in ("user", "assistant")][-HISTORY_TURNS:]
    messages = [{"role": "system", "content": REWRITE_SYSTEM}, *turns,
                {"role": "user", "content": question}]  # fmt: skip
    rewritten = " ".join(llm.chat(messages, 64).split())
    if rewritten and len(rewritten) <= 3 * len(question) + 200:
        return rewritten
    previous = [m["content"] for m in turns if m["role"] == "user"]
    return f"{previous[-1]} {question}" if previous else question
