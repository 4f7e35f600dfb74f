"""SmolLM2 on llama.cpp in-process, through the prebuilt `xllamacpp` wheel (extra `llm`).

llama.cpp runs the shipped weights (Q4_1) re-stored once as Q8_0 (`rag/gguf_copy.py`): on
an AVX2 CPU that reads prompts ~1.7x faster, and prompts are most of an answer's time. It loads
in under a second (transformers needs ~8 s, ~35 s the first time) and generates 2-3x faster
(docs/benchmarks.md).

Prompt, stop strings and repetition penalty are `LocalChatModel`'s, so the text is the same
except after two nearly tied tokens: llama.cpp multiplies the 8-bit weights with activations
rounded to 8 bits, transformers computes in fp32, and logits differ by up to ~0.3. Given the
weights in F32, llama.cpp gives transformers' text (tests/rag/test_llamacpp.py).
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from embedstack.errors import LLMError, ModelLoadError, ModelNotFoundError
from embedstack.models.onnx_backend import cpu_threads
from embedstack.rag.gguf_copy import eight_bit
from embedstack.rag.llm import Message
from embedstack.rag.local import (
    DEFAULT_CONTEXT_WINDOW,
    LOCAL_MODELS,
    REPETITION_PENALTY,
    STOP_STRINGS,
    completion_prompt,
    gguf_path,
    prompt_too_long,
    until_stop,
)

MAX_THREADS = 8  # a 135M model's decoding gains little from more cores
QUIET = -1  # llama.cpp's log verbosity: below errors, so nothing reaches stderr
log = logging.getLogger(__name__)
_END = object()  # the end of a stream, on the queue between llama.cpp's thread and ours


class LlamaCppChatModel:
    """Greedy decoding on llama.cpp; safe to call from several threads at once.

    Repetition penalty: transformers' `repetition_penalty` penalises every token of the
    prompt and answer, llama.cpp's `repeat_penalty` only the last `repeat_last_n` (64 by
    default), so this asks for a window as long as the context: the same tokens, the same
    formula (a positive logit divided by 1.1, a negative one multiplied). The penalty stays
    in both, as the answers in docs/benchmarks.md were made with it.

    llama.cpp has one slot here (`n_parallel = 1`): concurrent calls wait in its own queue,
    so each runs with all the threads, as `SerializedChatModel` in the server wants anyway.
    Prompt caching is off, so an answer never depends on what was asked before it.
    """

    runtime = "llamacpp"

    def __init__(
        self,
        name: str = "smollm2",
        context_window: int = DEFAULT_CONTEXT_WINDOW,
        threads: int | None = None,
        gguf: Path | None = None,
    ) -> None:
        """`threads`: EMBEDSTACK_THREADS, else the usable CPUs, at most 8. `gguf`: another
        file of the same model (another quantisation) instead of the 8-bit copy of the
        package's Q4_1."""
        if name not in LOCAL_MODELS:
            raise ModelNotFoundError(
                f"unknown local LLM {name!r}; known: {', '.join(LOCAL_MODELS)}"
            )
        try:
            import xllamacpp
        except ImportError as exc:
            raise ModelNotFoundError(
                "the llama.cpp runtime needs xllamacpp: pip install 'embedstack[llm]'"
            ) from exc
        gguf = gguf or _fast_weights(gguf_path(*LOCAL_MODELS[name]))
        threads = threads or min(cpu_threads(), MAX_THREADS)
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx = context_window
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = QUIET
        # xllamacpp.Server also answers HTTP on a random port. We only call its /tokenize,
        # so it stays on loopback (the default, set again here) and takes a key that only
        # this object knows: no other program on the machine can use it.
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        key = secrets.token_urlsafe(32)
        params.api_keys = [key]
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise ModelLoadError(f"llama.cpp could not load {gguf}: {exc}") from exc
        address = self._server.listening_address
        if not address.startswith("http://127.0.0.1:"):
            raise ModelLoadError(f"llama.cpp listens on {address!r}, not on loopback")
        self._http = httpx.Client(
            base_url=address, headers={"Authorization": f"Bearer {key}"}, timeout=60.0
        )
        self.name = name
        self.context_window = context_window
        self.threads = threads

    def close(self) -> None:
        """Stop llama.cpp's threads and free the model now rather than at garbage collection."""
        self._http.close()
        self.__dict__.pop("_server", None)

    def count_tokens(self, text: str) -> int:
        return len(self._tokens(text))

    def _tokens(self, text: str) -> list[int]:
        """llama.cpp's own tokenizer, over loopback (~4 ms for 1,000 tokens)."""
        body = {"content": text, "add_special": False, "parse_special": True}
        try:
            response = self._http.post("/tokenize", json=body)
            tokens = response.json()["tokens"] if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise LLMError(f"llama.cpp could not tokenize: {exc!r}") from exc
        if not isinstance(tokens, list):
            raise LLMError(f"llama.cpp could not tokenize: HTTP {response.status_code}")
        return tokens

    def _request(self, messages: list[Message], max_tokens: int, stream: bool) -> dict[str, Any]:
        """The prompt goes as tokens: counted here against the window as the transformers
        runtime counts them (llama.cpp's own window is rounded up to a multiple of 256)."""
        prompt = self._tokens(completion_prompt(messages))
        if len(prompt) >= self.context_window:
            raise prompt_too_long(len(prompt), self.context_window)
        return {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0,
            "repeat_penalty": REPETITION_PENALTY,
            "repeat_last_n": self.context_window,  # all of it, as transformers (see above)
            "stop": STOP_STRINGS,
            "cache_prompt": False,
            "stream": stream,
        }

    def chat(self, messages: list[Message], max_tokens: int) -> str:
        reply = self._server.handle_completions(self._request(messages, max_tokens, False))
        return "".join(until_stop([_text(reply)], STOP_STRINGS))

    def stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        yield from until_stop(self._pieces(messages, max_tokens), STOP_STRINGS)

    def _pieces(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        """llama.cpp calls back with each piece on a thread of ours; a queue hands them over.

        The callback's answer tells llama.cpp whether to stop, so a reader that stops early
        (a stop string, a closed connection) cancels the generation.
        """
        request = self._request(messages, max_tokens, True)
        events: queue.SimpleQueue[object] = queue.SimpleQueue()
        cancelled = threading.Event()

        def on_event(event: dict[str, Any]) -> bool:
            events.put(event)
            return cancelled.is_set()

        def generate() -> None:
            try:
                self._server.handle_completions(request, on_event)
            except BaseException as exc:  # surfaced to the reader below
                events.put(exc)
            finally:
                events.put(_END)

        threading.Thread(target=generate, daemon=True, name="llamacpp-stream").start()
        try:
            while (event := events.get()) is not _END:
                if isinstance(event, BaseException):
                    raise LLMError(f"llama.cpp failed: {event!r}") from event
                if isinstance(event, dict):
                    yield _text(event)
        finally:
            cancelled.set()


def _fast_weights(shipped: Path) -> Path:
    """The 8-bit copy of the shipped weights; the shipped file itself if no copy can be made
    (a read-only or full cache), which is slower but the same model."""
    try:
        return eight_bit(shipped)
    except (OSError, ValueError) as exc:
        log.warning("llama.cpp runs the 4-bit weights: no 8-bit copy (%s)", exc)
        return shipped


def _text(reply: dict[str, Any]) -> str:
    """The text of a completion (or of one streamed piece); llama.cpp's errors as ours."""
    error = reply.get("error")
    if error is None and "choices" not in reply and "message" in reply:
        error = reply  # the binding's own {"code", "type", "message"}
    if error is not None:
        details: dict[str, Any] = error if isinstance(error, dict) else {"message": str(error)}
        if details.get("type") == "exceed_context_size_error":
            raise prompt_too_long(details.get("n_prompt_tokens", 0), details.get("n_ctx", 0))
        raise LLMError(f"llama.cpp failed: {details.get('message', details)}")
    try:
        text = reply["choices"][0]["text"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"llama.cpp returned no completion: {str(reply)[:200]}") from exc
    if not isinstance(text, str):
        raise LLMError("llama.cpp returned a completion without text")
    return text
