"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server) over httpx."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx

from embedstack.models.remote import auth_headers, check_status, http_errors
from embedstack.rag.llm import ContextWindowError, LLMError, Message

CHARS_PER_TOKEN = 3.5  # endpoints do not tokenize for us; estimate conservatively
DEFAULT_CONTEXT_WINDOW = 8192  # when the endpoint does not say
# Fields servers use in /models for the context length: vLLM, ours, llama.cpp and others.
CONTEXT_FIELDS = ("max_model_len", "context_length", "context_window", "n_ctx")
# How servers word "too long" in an HTTP 400 (OpenAI, vLLM, llama.cpp, Ollama, ours).
_TOO_LONG = re.compile(r"context (length|window|size)|too long|maximum.*tokens", re.IGNORECASE)


class OpenAIChatModel:
    """`/chat/completions`, plain or streamed (server-sent events); greedy (temperature 0)."""

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        context_window: int | None = None,
    ) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._context_window = context_window
        self._client = httpx.Client(timeout=timeout, headers=auth_headers(api_key))
        self._url = f"{self.base_url}/chat/completions"

    @property
    def context_window(self) -> int:
        """As given, else as the endpoint's /models says (vLLM, serve-llm), else 8192."""
        if self._context_window is None:
            self._context_window = self._advertised_window() or DEFAULT_CONTEXT_WINDOW
        return self._context_window

    def _advertised_window(self) -> int | None:
        try:
            response = self._client.get(f"{self.base_url}/models", timeout=5.0)
            entries = response.json()["data"] if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None  # not every server lists models; the default stands
        entries = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
        ours = [e for e in entries if e.get("id") == self.model]
        if not ours and len(entries) == 1:  # a server of one model may name it differently
            ours = entries
        for entry in ours:
            for name in CONTEXT_FIELDS:
                if isinstance(entry.get(name), int) and entry[name] > 0:
                    return entry[name]
        return None

    def count_tokens(self, text: str) -> int:
        return int(len(text) / CHARS_PER_TOKEN) + 1

    def _body(self, messages: list[Message], max_tokens: int, stream: bool) -> dict:
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": stream,
        }

    def chat(self, messages: list[Message], max_tokens: int) -> str:
        url = self._url
        with http_errors(url, self._client, LLMError):
            response = self._client.post(url, json=self._body(messages, max_tokens, False))
        _check(url, response.status_code, response.text)
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"{url} did not return an OpenAI-style chat reply: {exc!r}") from exc
        if not isinstance(content, str):
            raise LLMError(f"{url} returned a reply without text content")
        return content

    def stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        url = self._url
        body = self._body(messages, max_tokens, True)
        with (
            http_errors(url, self._client, LLMError),
            self._client.stream("POST", url, json=body) as response,
        ):
            if response.status_code != 200:
                _check(url, response.status_code, response.read().decode(errors="replace"))
            for line in response.iter_lines():
                piece = _sse_piece(url, line)
                if piece is None:
                    return
                if piece:
                    yield piece


def _check(url: str, status: int, text: str) -> None:
    """HTTP errors as LLMError; a 400 about the prompt's length as ContextWindowError."""
    if status == 400 and _TOO_LONG.search(text):
        raise ContextWindowError(f"{url} answered HTTP 400: {text[:200]!r}")
    check_status(url, status, text, LLMError)


def _sse_piece(url: str, line: str) -> str | None:
    """The text in one server-sent-events line; "" for keep-alives, None at [DONE]."""
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        delta = json.loads(data)["choices"][0].get("delta", {})
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise LLMError(f"{url} sent a malformed stream event: {data[:120]!r}") from exc
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""
