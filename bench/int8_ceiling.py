"""How fast could an int8 transformer encoder possibly be on this CPU? A measured upper bound.

    .venv/bin/python bench/int8_ceiling.py [--n 400] [--texts scifact|sts] [--model NAME]

Issue 3 asks the int8 default to reach 3.0x sentence-transformers. This script asks whether any
int8 runtime could, here. It times one int8 linear layer exactly as the default backend runs it
(ONNX Runtime's dynamic quantisation: activations quantised at run time, per-channel int8
weights, the u8s8 GEMM) and one fp32 layer, at the model's own shapes, on one thread. It counts
the multiply-adds the model does on each text (from its real token count: projections, FFN and
attention), and prints the texts/s the model would reach if *every* multiply-add ran at the int8
layer's speed on every core and nothing else (embeddings, LayerNorm, GELU, softmax, adds,
pooling, tokenising) cost any time, beside sentence-transformers and embedstack measured in the
same run on the same texts. The ceiling is generous on purpose: real runs cannot beat it.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from embed_speed import interleaved, load_texts


def layer_shapes(config: dict) -> dict[str, tuple[int, int, int]]:
    """Linear layers per transformer block: name -> (input width, output width, count)."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    return {
        "q/k/v/out": (hidden, hidden, 4),
        "ffn up": (hidden, inner, 1),
        "ffn down": (inner, hidden, 1),
    }


def linear_layer(path: Path, inputs: int, outputs: int, quantize: bool) -> Path:
    """A one-MatMul ONNX model with a random weight; int8 by the default backend's own recipe."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((inputs, outputs)) / np.sqrt(inputs)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="dense/MatMul")],
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", outputs])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    fp32 = path / f"fp32-{inputs}x{outputs}.onnx"
    onnx.save(model, str(fp32))
    if not quantize:
        return fp32
    from embedstack.models.onnx_export import quantize_int8

    int8 = path / f"int8-{inputs}x{outputs}.onnx"
    quantize_int8(fp32, int8)  # MiniLM's recipe: per-channel weights, nothing kept in fp32
    return int8


def multiply_adds_per_second(model: Path, rows: int, inputs: int, outputs: int) -> float:
    """Best of several runs, one thread, the session options the default backend uses."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    # Activations shaped like a real hidden state: unit scale with a few large channels.
    x = np.random.default_rng(1).standard_normal((rows, inputs)).astype(np.float32)
    x[:, :4] *= 20
    session.run(None, {"x": x})
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        session.run(None, {"x": x})
        best = min(best, time.perf_counter() - started)
    return rows * inputs * outputs / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--texts", choices=["scifact", "sts"], default="scifact")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved slices")
    args = parser.parse_args()
    texts = load_texts(args.texts, args.n)

    from sentence_transformers import SentenceTransformer

    from embedstack import load_model
    from embedstack.models import find_spec
    from embedstack.models.onnx_backend import cpu_threads
    from embedstack.models.tokenization import TextTokenizer

    spec = find_spec(args.model)
    folder = spec.locate()
    encoder = load_model(spec.name, backend="onnx-int8")
    config = json.loads(next(folder.rglob("config.json")).read_text())
    tokenizer = TextTokenizer(encoder.tokenizer_file, encoder.max_tokens)  # as encode() does
    lengths = [len(e.ids) for e in tokenizer.encode(texts)]
    layers = config["num_hidden_layers"]
    # Multiply-adds over all texts: per kind of linear layer, and in attention (Q·Kᵀ, weights·V).
    linear = {
        name: layers * sum(lengths) * a * b * count
        for name, (a, b, count) in layer_shapes(config).items()
    }
    attention = layers * sum(2 * n * n * config["hidden_size"] for n in lengths)
    rows = 32 * int(np.median(lengths))  # one batch of 32 median-length texts

    rates: dict[str, dict[str, float]] = {"int8": {}, "fp32": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (a, b, _) in layer_shapes(config).items():
            for kind in rates:
                model = linear_layer(Path(tmp), a, b, quantize=kind == "int8")
                rates[kind][name] = multiply_adds_per_second(model, rows, a, b)

    cores = cpu_threads()

    def ceiling(kind: str) -> float:
        """Texts/s if every multiply-add ran at this kind's layer speed on every core."""
        seconds = sum(linear[name] / rates[kind][name] for name in linear)
        seconds += attention / max(rates[kind].values())
        return cores * len(texts) / seconds

    model = SentenceTransformer(str(folder), device="cpu")
    measured = interleaved(
        {
            "sentence-transformers (torch fp32)": model.encode,
            "embedstack onnx-int8": encoder.encode,
        },
        texts,
        args.rounds,
    )
    base = measured["sentence-transformers (torch fp32)"][0]
    print(
        f"\n{len(texts)} {args.texts} texts · {spec.name} · median {int(np.median(lengths))} "
        f"tokens · {cores} cores · {platform.machine()}"
    )
    print(
        f"multiply-adds per text: {sum(linear.values()) / len(texts) / 1e9:.2f} G linear + "
        f"{attention / len(texts) / 1e9:.2f} G attention\n"
    )
    print("| one thread, rows × in → out | fp32 GMAC/s | int8 GMAC/s | int8 / fp32 |")
    print("|---|---|---|---|")
    for name, (a, b, _) in layer_shapes(config).items():
        fp32, int8 = rates["fp32"][name] / 1e9, rates["int8"][name] / 1e9
        print(f"| {name}: {rows} × {a} → {b} | {fp32:.1f} | {int8:.1f} | {int8 / fp32:.2f}x |")
    print("\n| encoder | texts/s | vs sentence-transformers |")
    print("|---|---|---|")
    table = [(name, speed) for name, (speed, _) in measured.items()]
    table += [
        ("ceiling: every multiply-add at the fp32 layer speed, nothing else", ceiling("fp32")),
        ("ceiling: every multiply-add at the int8 layer speed, nothing else", ceiling("int8")),
    ]
    for name, speed in table:
        print(f"| {name} | {speed:.1f} | {speed / base:.2f}x |")


if __name__ == "__main__":
    main()
