"""`load_llm`: a local model by name, or an OpenAI-compatible endpoint as "openai:MODEL"."""

from __future__ import annotations

from embedstack.errors import InvalidInputError
from embedstack.rag.llm import ChatModel

DEFAULT_LLM = "smollm2"


def load_llm(
    name: str = DEFAULT_LLM,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
    context_window: int | None = None,
) -> ChatModel:
    """`"smollm2"` runs offline in-process; `"openai:MODEL"` needs `base_url` (API key from
    OPENAI_API_KEY or EMBEDSTACK_API_KEY unless given)."""
    if name.startswith("openai:") or base_url is not None:
        from embedstack.rag.openai_chat import OpenAIChatModel

        if base_url is None:
            raise InvalidInputError(f"{name!r} needs --base-url (e.g. http://127.0.0.1:8080/v1)")
        model = name.removeprefix("openai:")
        return OpenAIChatModel(
            model, base_url, api_key=api_key, timeout=timeout, context_window=context_window
        )
    from embedstack.rag.local import DEFAULT_CONTEXT_WINDOW, LocalChatModel

    return LocalChatModel(name, context_window or DEFAULT_CONTEXT_WINDOW)
