"""Why the int8 encoder embeds one text per run: throughput by batch size, and how far a text's
vector moves with its batch-mates, side by side in one run.

    .venv/bin/python bench/int8_batch.py [--n 512] [--model all-MiniLM-L6-v2]

Texts: the first N STS-B sentences (short) and N/8 SciFact passages (~256 tokens), from
../shared/data. Each batch size runs through the encoder's own session pool (two one-thread
sessions on 2 CPUs), bypassing the one-text-per-run rule so the batch size is what it says.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np

from embedstack import load_model
from embedstack.models.encoder import Encoder
from embedstack.models.pooling import l2_normalize, pool
from embedstack.models.tokenization import TextTokenizer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SIZES = (1, 2, 4, 8, 16, 32)


def cpu() -> str:
    info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    name = next(line.split(":", 1)[1].strip() for line in info.splitlines() if "model name" in line)
    flags = next(line.split(":", 1)[1].split() for line in info.splitlines() if "flags" in line)
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f in flags]
    return f"{name} ({', '.join(simd)})"


def sentences(n: int) -> list[str]:
    path = DATA / "stsbenchmark"
    found: list[str] = []
    for file in sorted(path.glob("*test*")):
        for line in file.read_text(encoding="utf-8").splitlines():
            for sentence in line.split("\t")[5:7]:
                if sentence not in found:
                    found.append(sentence)
    return found[:n]


def passages(n: int) -> list[str]:
    with (DATA / "scifact" / "corpus.jsonl").open(encoding="utf-8") as lines:
        docs = [json.loads(line) for _, line in zip(range(n), lines, strict=False)]
    return [f"{d['title']} {d['text']}".strip() for d in docs]


def encode_batched(model: Encoder, texts: list[str], batch_size: int) -> np.ndarray:
    """What `encode` did before the one-text rule: length-sorted batches of `batch_size`."""
    tokenizer = model._tokenizer
    encodings = tokenizer.encode(texts)
    order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
    slices = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = [TextTokenizer.pad([encodings[i] for i in rows]) for rows in slices]
    out = np.empty((len(texts), model.dim), dtype=np.float32)
    for rows, batch, tokens in zip(slices, batches, model._run(batches), strict=True):
        out[rows] = l2_normalize(pool(tokens, batch["attention_mask"], model._config.pooling))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"no evaluation data at {DATA}")
    model = load_model(args.model, "onnx-int8")
    assert isinstance(model, Encoder)
    sets = {"short (STS-B)": sentences(args.n), "passages (SciFact)": passages(args.n // 8)}
    print(f"{datetime.date.today()} · {cpu()} · {platform.machine()} · {args.model} onnx-int8\n")
    print("| texts | " + " | ".join(f"batch {s}" for s in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for name, texts in sets.items():
        encode_batched(model, texts[:16], 8)  # warm-up
        rates = []
        for size in SIZES:
            started = time.perf_counter()
            encode_batched(model, texts, size)
            rates.append(len(texts) / (time.perf_counter() - started))
        print(f"| {name}, texts/s | " + " | ".join(f"{r:.0f}" for r in rates) + " |")
    print()
    for name, texts in sets.items():
        alone = encode_batched(model, texts, 1)
        in_32 = encode_batched(model, texts, 32)
        cosine = np.sum(alone * in_32, axis=1)
        print(f"{name}: cosine of a text alone vs in a batch of 32: "
              f"min {cosine.min():.4f}, mean {cosine.mean():.4f}")  # fmt: skip
        same = np.abs(model.encode(texts[:64]) - alone[:64]).max()
        print(f"  encode() now equals the one-text run: max |difference| {same:.2e}")


if __name__ == "__main__":
    main()
