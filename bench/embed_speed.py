"""Encoder throughput and fidelity of every runtime, side by side in one run on the same texts.

    .venv/bin/python bench/embed_speed.py [--n 2000] [--texts scifact,sts] [--model NAME]

Compares sentence-transformers (PyTorch, fp32) with each embedstack runtime (torch, onnx,
onnx-int8, openvino, openvino-bf16 where this CPU has bf16 units, openvino-int8) and with `auto`,
on the first N SciFact passages (title + abstract, as MTEB encodes them) and N STS-B sentences.
Encoders take turns on slices of the texts (--rounds), so a noisy neighbour slows them alike.
Prints the CPU, then per text kind texts/s, the speed ratio to sentence-transformers, and
mean/min cosine to its embeddings, and which runtime `auto` chose on this machine and why.
Models shipped as ONNX only have no sentence-transformers run: the reference is embedstack's
own fp32 ONNX run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from machine import cpu_line

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def load_texts(kind: str, n: int) -> list[str]:
    if kind == "scifact":
        with (DATA / "scifact" / "corpus.jsonl").open(encoding="utf-8") as lines:
            docs = [json.loads(line) for _, line in zip(range(n), lines, strict=False)]
        return [(d.get("title", "") + " " + d["text"]).strip() for d in docs]
    sentences: list[str] = []
    for line in (DATA / "stsbenchmark" / "sts-train.csv").read_text(encoding="utf-8").splitlines():
        sentences.extend(line.split("\t")[5:7])
    return sentences[:n]


def interleaved(encoders: dict, texts: list[str], rounds: int) -> dict:
    """Time every encoder on each slice of the texts in turn, so that load from elsewhere on a
    shared machine falls on all of them alike. Returns name -> (texts/s, vectors)."""
    for encode in encoders.values():
        encode(texts[:32])  # warm-up: first-call allocations are not throughput
    seconds = dict.fromkeys(encoders, 0.0)
    parts: dict = {name: [] for name in encoders}
    size = -(-len(texts) // rounds)
    for start in range(0, len(texts), size):
        chunk = texts[start : start + size]
        for name, encode in encoders.items():
            started = time.perf_counter()
            parts[name].append(encode(chunk))
            seconds[name] += time.perf_counter() - started
    return {name: (len(texts) / seconds[name], np.vstack(parts[name])) for name in encoders}


def encoders_for(model_name: str) -> dict:
    """name -> encode(texts, batch_size): the reference first, then every runtime, then auto."""
    from embedstack import load_model
    from embedstack.errors import EmbedstackError
    from embedstack.models import find_spec

    spec = find_spec(model_name)
    encoders = {}
    if spec.onnx_only:
        encoders["embedstack onnx (reference)"] = load_model(spec.name, backend="onnx").encode
    else:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(spec.locate()), device="cpu")
        encoders["sentence-transformers (torch fp32)"] = model.encode
    for backend in spec.backends:
        try:
            encoder = load_model(spec.name, backend=backend)
        except EmbedstackError as exc:  # OpenVINO missing, or no bf16 units on this CPU
            print(f"skipped {backend}: {exc}")
            continue
        label = f"auto (= {encoder.backend})" if backend == "auto" else backend
        encoders[f"embedstack {label}"] = encoder.encode
    return encoders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--texts", default="scifact,sts", help="scifact, sts or both")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved slices")
    args = parser.parse_args()

    from embedstack.models import find_spec
    from embedstack.models.transformer_backend import runtime_choice_for

    print(cpu_line())
    spec = find_spec(args.model)
    encoders = encoders_for(spec.name)
    for kind in args.texts.split(","):
        texts = load_texts(kind, args.n)
        results = interleaved(
            {n: (lambda t, e=e: e(t, batch_size=args.batch_size)) for n, e in encoders.items()},
            texts,
            args.rounds,
        )
        rows = []
        reference = None
        for name, (speed, vectors) in results.items():
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            reference = vectors if reference is None else reference
            cos = (vectors * reference).sum(axis=1)
            rows.append((name, speed, float(cos.mean()), float(cos.min())))
        print(
            f"\n{len(texts)} {kind} texts · {spec.name} · batch {args.batch_size} · "
            f"{os.cpu_count()} CPUs · {args.rounds} interleaved rounds\n"
        )
        print(f"| encoder | texts/s | vs {rows[0][0]} | mean cos | min cos |")
        print("|---|---|---|---|---|")
        base = rows[0][1]
        for name, speed, mean_cos, min_cos in rows:
            print(
                f"| {name} | {speed:.1f} | {speed / base:.2f}x | {mean_cos:.4f} | {min_cos:.4f} |"
            )
    choice = runtime_choice_for(spec)
    if choice is not None:
        when = f"{choice.measured_at}, {choice.texts} calibration texts"
        print(f"\nauto chose {choice.chosen} ({when}):")
        print("| runtime | texts/s | mean cos | min cos | faithful |")
        print("|---|---|---|---|---|")
        for t in choice.trials:
            if t.error:
                print(f"| {t.backend} | – | – | – | {t.error} |")
            else:
                faithful = "yes" if t.faithful else "no"
                print(
                    f"| {t.backend} | {t.texts_per_s:.1f} | {t.mean_cosine:.4f} | "
                    f"{t.min_cosine:.4f} | {faithful} |"
                )


if __name__ == "__main__":
    main()
