"""Named conversations kept in memory, so `ask(..., session="ana")` can follow up.

Thread-safe: a server may answer two questions of different sessions at once.
"""

from __future__ import annotations

import threading

from embedstack.rag.answer import Answer
from embedstack.rag.asking import AnswerStream
from embedstack.rag.llm import Message


class ChatSessions:
    def __init__(self) -> None:
        self._turns: dict[str, list[Message]] = {}
        self._lock = threading.Lock()

    def history(self, session: str) -> list[Message]:
        """The turns kept for `session` so far (a copy; empty for a new session)."""
        with self._lock:
            return list(self._turns.get(session, []))

    def record(
        self, session: str, question: str, result: Answer | AnswerStream
    ) -> Answer | AnswerStream:
        """Keep the question and its answer once the answer is complete; returns `result`."""

        def remember(answer: Answer) -> None:
            with self._lock:
                self._turns.setdefault(session, []).extend(
                    [{"role": "user", "content": question},
                     {"role": "assistant", "content": answer.text}]
                )  # fmt: skip

        if isinstance(result, AnswerStream):
            return result.when_done(remember)
        remember(result)
        return result
