"""The local LLM's speed on each runtime: one RAG answer from a short and a long prompt.

    .venv/bin/python bench/llm_speed.py [--rounds 3] [--answer-tokens 64] [--threads N]
                                        [--gguf FILE]

Prompts are built by `build_prompt` from SciFact abstracts (about 300 and 1,800 tokens). Each
runtime generates exactly `--answer-tokens` tokens (no stop strings, end-of-text ignored) with
the decoding settings of `chat`, and once more with 1 token: that time gives prompt tokens/s,
the difference gives generated tokens/s. Runtimes take turns within each round, so a noisy
neighbour slows them alike; medians are printed, with the process's CPU seconds per answer
(with --threads 1 the figure least disturbed by other work on the machine). `--gguf` adds
llama.cpp on another file of the same model (e.g. an F32 copy, see tests/rag/test_llamacpp.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
QUESTION = "What do these studies find about the effect of the treatment?"
SIZES = {"short": 300, "long": 1800}


def prompts(llm) -> dict[str, tuple[list, str, int]]:
    """Name -> (messages, their completion-style prompt text, its tokens), near each size."""
    from embedstack.rag.local import completion_prompt
    from embedstack.rag.prompt import build_prompt
    from embedstack.types import Chunk, Hit

    with (DATA / "scifact" / "corpus.jsonl").open(encoding="utf-8") as lines:
        docs = [json.loads(line) for _, line in zip(range(60), lines, strict=False)]
    hits = []  # chunks of 60 words, as a retriever would return passages
    for doc in docs:
        words = doc["text"].split()
        for start in range(0, len(words), 60):
            chunk = Chunk(f"{doc['_id']}-{start}", " ".join(words[start : start + 60]),
                          {"file_name": doc["title"][:60]})  # fmt: skip
            hits.append(Hit(chunk, 0.9))

    class Budget:  # the model's tokens, the target's window
        name = llm.name

        def __init__(self, window: int) -> None:
            self.context_window = window

        def count_tokens(self, text: str) -> int:
            return llm.count_tokens(text)

    found = {}
    for name, target in SIZES.items():
        messages = build_prompt(QUESTION, hits, Budget(target), 0).messages
        text = completion_prompt(messages)
        found[name] = (messages, text, llm.count_tokens(text))
    return found


def llamacpp_generate(llm, text: str, tokens: int) -> None:
    from embedstack.rag.local import REPETITION_PENALTY

    reply = llm._server.handle_completions({
        "prompt": text, "max_tokens": tokens, "temperature": 0, "ignore_eos": True,
        "repeat_penalty": REPETITION_PENALTY, "repeat_last_n": llm.context_window,
        "cache_prompt": False,
    })  # fmt: skip
    assert reply["usage"]["completion_tokens"] == tokens, reply


def transformers_generate(llm, text: str, tokens: int) -> None:
    import torch

    from embedstack.rag.local import REPETITION_PENALTY

    inputs = llm._tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        out = llm._model.generate(
            **inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
            repetition_penalty=REPETITION_PENALTY,
        )  # fmt: skip
    assert out.shape[1] - inputs["input_ids"].shape[1] == tokens


def cpu_name() -> str:
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if "Model name" in line]
    return names[0] if names else platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--answer-tokens", type=int, default=64)
    parser.add_argument("--gguf", type=Path, help="also llama.cpp on this GGUF file")
    parser.add_argument("--threads", type=int, help="for both runtimes (default: the CPUs)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from embedstack.rag.llamacpp import LlamaCppChatModel
    from embedstack.rag.local import LocalChatModel

    started = time.perf_counter()
    runtimes = {"llamacpp": (LlamaCppChatModel(threads=args.threads), llamacpp_generate)}
    loaded = {"llamacpp": time.perf_counter() - started}
    if args.gguf:
        started = time.perf_counter()
        runtimes["llamacpp-file"] = (
            LlamaCppChatModel(threads=args.threads, gguf=args.gguf),
            llamacpp_generate,
        )
        loaded["llamacpp-file"] = time.perf_counter() - started
    started = time.perf_counter()
    runtimes["transformers"] = (LocalChatModel(), transformers_generate)
    loaded["transformers"] = time.perf_counter() - started
    texts = prompts(runtimes["llamacpp"][0])

    times: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    chats: dict[tuple[str, str], tuple[float, int]] = {}  # the last round's
    for llm, generate in runtimes.values():
        generate(llm, texts["short"][1], 2)  # warm-up
    for _ in range(args.rounds):
        for size, (messages, text, _) in texts.items():
            for name, (llm, generate) in runtimes.items():
                for tokens in (1, args.answer_tokens):
                    started, cpu = time.perf_counter(), cpu_seconds()
                    generate(llm, text, tokens)
                    took = (time.perf_counter() - started, cpu_seconds() - cpu)
                    times.setdefault((name, size, tokens), []).append(took)
                started = time.perf_counter()
                answer = llm.chat(messages, args.answer_tokens)  # as `ask` would, stops and all
                chats[(name, size)] = (time.perf_counter() - started, llm.count_tokens(answer))

    threads = runtimes["llamacpp"][0].threads
    print(
        f"{cpu_name()} · {os.cpu_count()} CPUs · threads {threads} · "
        f"{args.rounds} interleaved rounds, medians · {args.answer_tokens} answer tokens\n"
    )
    print("load (s): " + ", ".join(f"{name} {s:.1f}" for name, s in loaded.items()) + "\n")
    print("| runtime | prompt | prompt tokens | s per answer | CPU s | prompt tok/s | gen. tok/s |")
    print("|---|---|---|---|---|---|---|")
    for size, (_, _, prompt_tokens) in texts.items():
        for name in runtimes:
            first = statistics.median(wall for wall, _ in times[(name, size, 1)])
            whole = statistics.median(wall for wall, _ in times[(name, size, args.answer_tokens)])
            cpu = statistics.median(cpu for _, cpu in times[(name, size, args.answer_tokens)])
            generated = (args.answer_tokens - 1) / max(whole - first, 1e-9)
            print(
                f"| {name} | {size} | {prompt_tokens} | {whole:.2f} | {cpu:.2f} | "
                f"{prompt_tokens / first:.0f} | {generated:.1f} |"
            )

    print("\n`chat` as `ask` calls it (stop strings on), last round:\n")
    for (name, size), (seconds, tokens) in chats.items():
        print(f"- {name}, {size} prompt: {seconds:.2f} s for a {tokens}-token answer")


def cpu_seconds() -> float:
    """User and system time of this process, all threads (llama.cpp's and PyTorch's too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
