"""The prompt: numbered sources in rank order, as many as fit the LLM's context window."""

from __future__ import annotations

from dataclasses import dataclass

from embedstack.errors import InvalidInputError
from embedstack.rag.llm import ChatModel, Message
from embedstack.timecode import timecode
from embedstack.types import Hit

SYSTEM = (
    "You answer questions using only the numbered sources the user gives you. "
    "After each fact, cite its source number in square brackets, like [1]. "
    "If the sources do not contain the answer, say that the documents do not say. "
    "Answer in at most three sentences."
)
NO_ANSWER = "The documents do not say."


@dataclass(frozen=True)
class Prompt:
    messages: list[Message]
    sources: list[Hit]  # numbered 1..n, in the order of the prompt
    dropped: int  # retrieved chunks left out for lack of room
    tokens: int


def source_label(hit: Hit) -> str:
    """'guide.pdf, p. 3, Setup > Install', 'meeting.mp3, at 12:31' — what the model (and the
    reader) sees per source."""
    meta = hit.metadata
    parts = [str(meta.get("file_name") or meta.get("source") or hit.id)]
    if "page" in meta:
        parts.append(f"p. {meta['page']}")
    if isinstance(meta.get("time_start"), int | float):
        parts.append(f"at {timecode(meta['time_start'])}")
    if meta.get("heading"):
        parts.append(str(meta["heading"]))
    return ", ".join(parts)


def build_prompt(question: str, hits: list[Hit], llm: ChatModel, answer_tokens: int) -> Prompt:
    """Sources in rank order until the token budget is spent; the lowest-ranked go first.

    The budget is the LLM's context window less the system text, the question and the room
    kept for the answer, counted in the LLM's own tokens.
    """

    def user_message(blocks: list[str]) -> str:
        return "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"

    fixed = llm.count_tokens(SYSTEM) + llm.count_tokens(user_message([])) + 16  # template tokens
    budget = llm.context_window - answer_tokens - fixed
    blocks: list[str] = []
    used = 0
    for hit in hits:
        block = f"[{len(blocks) + 1}] ({source_label(hit)})\n{hit.text}"
        cost = llm.count_tokens(block) + 2
        if used + cost > budget:
            break
        blocks.append(block)
        used += cost
    if hits and not blocks:
        raise InvalidInputError(
            f"the LLM's context window ({llm.context_window} tokens) has no room for even one "
            f"source: the best chunk needs {llm.count_tokens(hits[0].text)} tokens and only "
            f"{max(budget, 0)} are left after the question and {answer_tokens} for the answer"
        )
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user_message(blocks)},
    ]
    return Prompt(messages, hits[: len(blocks)], len(hits) - len(blocks), fixed + used)
