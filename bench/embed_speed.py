"""Encoder throughput and fidelity, side by side in one run on the same texts.

    .venv/bin/python bench/embed_speed.py [--n 2000] [--texts scifact|sts] [--model NAME]

Compares sentence-transformers (PyTorch, fp32) with each embedstack backend on the first N
SciFact passages (title + abstract, as MTEB encodes them) or N STS-B sentences. Prints
texts/s, the speed ratio to sentence-transformers, and mean/min cosine to its embeddings.
Models shipped as ONNX only have no sentence-transformers run: the reference is embedstack's
own fp32 ONNX run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

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


def timed(encode, texts: list[str]) -> tuple[float, np.ndarray]:
    encode(texts[:32])  # warm-up: first-call allocations are not throughput
    started = time.perf_counter()
    vectors = encode(texts)
    return len(texts) / (time.perf_counter() - started), vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--texts", choices=["scifact", "sts"], default="scifact")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    args = parser.parse_args()
    texts = load_texts(args.texts, args.n)

    from embedstack import load_model
    from embedstack.models import find_spec

    spec = find_spec(args.model)
    rows = []
    if spec.onnx_only:
        backends = ("onnx", "onnx-int8")
        reference_name = "embedstack onnx"
        base_encode = load_model(spec.name, backend="onnx").encode
    else:
        from sentence_transformers import SentenceTransformer

        backends = ("torch", "onnx", "onnx-int8")
        reference_name = "sentence-transformers (torch fp32)"
        base_encode = SentenceTransformer(str(spec.locate()), device="cpu").encode
    speed, reference = timed(lambda t: base_encode(t, batch_size=args.batch_size), texts)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    rows.append((reference_name, speed, 1.0, 1.0))
    for backend in backends:
        model = load_model(spec.name, backend=backend)
        speed, vectors = timed(lambda t, m=model: m.encode(t, batch_size=args.batch_size), texts)
        cos = (vectors * reference).sum(axis=1)
        rows.append((f"embedstack {backend}", speed, float(cos.mean()), float(cos.min())))

    print(
        f"\n{len(texts)} {args.texts} texts · {spec.name} · batch {args.batch_size} · "
        f"{os.cpu_count()} CPUs · {platform.machine()}\n"
    )
    print(f"| encoder | texts/s | vs {rows[0][0]} | mean cos | min cos |")
    print("|---|---|---|---|---|")
    base = rows[0][1]
    for name, speed, mean_cos, min_cos in rows:
        print(f"| {name} | {speed:.1f} | {speed / base:.2f}x | {mean_cos:.4f} | {min_cos:.4f} |")


if __name__ == "__main__":
    main()
