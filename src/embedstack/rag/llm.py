"""What every chat model offers to RAG, whichever runtime or server answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from embedstack.errors import ContextWindowError, LLMError

__all__ = ["ChatModel", "ContextWindowError", "LLMError", "Message"]

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


class ChatModel(Protocol):
    name: str

    @property
    def context_window(self) -> int:
        """Tokens, prompt and answer together."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model would see for `text` (exact locally, estimated for endpoints)."""
        ...

    def chat(self, messages: list[Message], max_tokens: int) -> str: ...

    def stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        """The reply as it is generated, piece by piece."""
        ...
