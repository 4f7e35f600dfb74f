"""The server's chat model, loaded on first use and shared by /v1/chat/completions and ask.

A local model has one set of weights, and two CPU-bound generations at once would only slow
each other down, so generations take turns (a stream holds its turn until it ends). They run
on a thread of their own, and a request waiting for its turn is work queued for that thread:
a blocked thread per waiting request would take AnyIO's 40 workers, which every sync route
(/health, search) needs too, so ~40 queued chat requests froze the whole server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, ParamSpec, TypeVar

from embedstack.rag.llm import ChatModel, Message
from embedstack.rag.loader import load_llm
from embedstack.server.errors import HTTPError

P = ParamSpec("P")
T = TypeVar("T")
# Requests that may wait for the LLM's turn; more are answered 503 at once. At a few seconds
# an answer on a CPU, the 65th in line would wait minutes: better to say so than to hang.
MAX_WAITING = 64


class SerializedChatModel:
    """A ChatModel whose generations run one at a time, on the LLM's own thread."""

    def __init__(self, llm: ChatModel) -> None:
        self.llm = llm
        self.name = llm.name
        # Held during a generation; on the LLM's thread it is always free, but it keeps
        # `chat` and `stream` one at a time for a caller on any other thread too.
        self._turn = threading.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="embedstack-llm")
        self._pending = 0  # work submitted to the LLM's thread and not yet done
        self._count = threading.Lock()

    @property
    def context_window(self) -> int:
        return self.llm.context_window

    def count_tokens(self, text: str) -> int:
        return self.llm.count_tokens(text)

    def chat(self, messages: list[Message], max_tokens: int) -> str:
        with self._turn:
            return self.llm.chat(messages, max_tokens)

    def stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        with self._turn:
            yield from self.llm.stream(messages, max_tokens)

    def check_room(self) -> None:
        """Raise a 503 when MAX_WAITING requests wait for the LLM already."""
        with self._count:
            waiting = max(self._pending - 1, 0)  # one of them is running
        if waiting >= MAX_WAITING:
            raise HTTPError(
                503, f"{waiting} requests are waiting for the LLM already; try again later",
                "llm_busy",
            )  # fmt: skip

    def submit(self, work: Callable[[], T]) -> Future[T]:
        """Queue `work` (anything that may call the LLM) for the LLM's thread."""
        with self._count:
            self._pending += 1
        future = self._thread.submit(work)
        future.add_done_callback(self._done)  # run, failed or cancelled
        return future

    def _done(self, _: Future[Any]) -> None:
        with self._count:
            self._pending -= 1

    async def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`work(*args, **kwargs)` on the LLM's thread, awaited without holding a thread
        (503 when too many requests wait already)."""
        self.check_room()
        return await asyncio.wrap_future(self.submit(partial(work, *args, **kwargs)))


class LazyChatModel:
    """Loads the LLM when a route first needs it, so a server for embeddings starts fast."""

    def __init__(self, name: str, base_url: str | None) -> None:
        self.name = name
        self._base_url = base_url
        self._model: SerializedChatModel | None = None
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """Its /v1/models entry; `context_length` is what OpenAI clients read to fit prompts."""
        entry: dict[str, Any] = {
            "id": self.name.removeprefix("openai:"),
            "object": "model",
            "created": 0,
            "owned_by": "embedstack",
            "kind": "chat",
        }
        if self._model is not None:
            entry["context_length"] = self._model.context_window
        elif self._base_url is None and not self.name.startswith("openai:"):
            from embedstack.rag.local import DEFAULT_CONTEXT_WINDOW

            entry["context_length"] = DEFAULT_CONTEXT_WINDOW
        return entry

    def get(self) -> SerializedChatModel:
        with self._lock:
            if self._model is None:
                self._model = SerializedChatModel(load_llm(self.name, base_url=self._base_url))
            return self._model
