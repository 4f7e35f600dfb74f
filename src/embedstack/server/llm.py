"""The server's chat model, loaded on first use and shared by /v1/chat/completions and ask.

A local model has one set of weights, and two CPU-bound generations at once would only slow
each other down, so generations take turns (a stream holds its turn until it ends).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from embedstack.rag.llm import ChatModel, Message
from embedstack.rag.loader import load_llm


class SerializedChatModel:
    """A ChatModel whose generations run one at a time."""

    def __init__(self, llm: ChatModel) -> None:
        self.llm = llm
        self.name = llm.name
        self._turn = threading.Lock()

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
