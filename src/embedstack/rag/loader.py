"""`load_llm`: a local model by name, or an OpenAI-compatible endpoint as "openai:MODEL"."""

from __future__ import annotations

from embedstack.errors import InvalidInputError
from embedstack.rag.llm import ChatModel
from embedstack.settings import get_settings

DEFAULT_LLM = "smollm2"
RUNTIMES = ("auto", "llamacpp", "transformers")


def load_llm(
    name: str = DEFAULT_LLM,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
    context_window: int | None = None,
    runtime: str | None = None,
) -> ChatModel:
    """`"smollm2"` runs offline in-process; `"openai:MODEL"` needs `base_url` (API key from
    OPENAI_API_KEY or EMBEDSTACK_API_KEY unless given).

    `runtime` is for local models: "llamacpp" (the `xllamacpp` wheel, extra `llm`),
    "transformers", or "auto" (the default, or EMBEDSTACK_LLM_RUNTIME): llama.cpp when
    `xllamacpp` is installed. The model's `name` is the same either way; its `runtime` says
    which one runs it.
    """
    if name.startswith("openai:") or base_url is not None:
        from embedstack.rag.openai_chat import OpenAIChatModel

        if base_url is None:
            raise InvalidInputError(f"{name!r} needs --base-url (e.g. http://127.0.0.1:8080/v1)")
        model = name.removeprefix("openai:")
        return OpenAIChatModel(
            model, base_url, api_key=api_key, timeout=timeout, context_window=context_window
        )
    from embedstack.rag.local import DEFAULT_CONTEXT_WINDOW, LocalChatModel

    runtime = runtime or get_settings().llm_runtime
    if runtime not in RUNTIMES:
        raise InvalidInputError(
            f"unknown LLM runtime {runtime!r} (runtime= or EMBEDSTACK_LLM_RUNTIME); "
            f"known: {', '.join(RUNTIMES)}"
        )
    window = context_window or DEFAULT_CONTEXT_WINDOW
    if runtime == "llamacpp" or (runtime == "auto" and llamacpp_installed()):
        from embedstack.rag.llamacpp import LlamaCppChatModel

        return LlamaCppChatModel(name, window)
    return LocalChatModel(name, window)


def llamacpp_installed() -> bool:
    """Whether `xllamacpp` imports (a wheel for another platform may be present but broken)."""
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        return False
    return True
