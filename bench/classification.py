"""Banking77 classification: MTEB's few-shot protocol reproduced, and heads on the full train split.

    .venv/bin/python bench/classification.py [--data ../shared/data/banking77]
        [--model all-MiniLM-L6-v2] [--backend onnx-int8] [--protocol-backends onnx onnx-int8]
        [--extras] [--json results.json]

Part 1 runs `evaluate_classification` (MTEB 1.12's protocol: 10 experiments, 8 texts per label,
logistic regression) on each backend and prints its accuracy next to MTEB's published figure.
Part 2 embeds the whole train and test splits once, then fits each `EmbeddingClassifier` head
on all 10,003 training vectors (`fit_vectors`) and scores the test split: accuracy, macro F1,
fit seconds. `--extras` adds heads tried and not offered (a linear SVM, an MLP).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from embedstack import load_model
from embedstack.analysis.classifier import EmbeddingClassifier
from embedstack.evaluation import evaluate_classification, load_classification

DATA = Path("../shared/data/banking77")
MTEB_ACCURACY = {"all-MiniLM-L6-v2": 0.80042}  # mteb 1.12.75, embeddings-benchmark/results


def cpu_model() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


def extra_heads() -> dict:
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import LinearSVC

    return {
        "linear SVM (C=1)": LinearSVC(C=1.0),
        "MLP (1024 hidden)": MLPClassifier(
            hidden_layer_sizes=(1024,), alpha=1e-3, max_iter=100, random_state=0
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--backend", default="onnx-int8", help="backend for the heads")
    parser.add_argument("--protocol-backends", nargs="*", default=["onnx", "onnx-int8"])
    parser.add_argument("--extras", action="store_true", help="also a linear SVM and an MLP")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    results: dict = {"cpu": cpu_model(), "model": args.model, "protocol": [], "heads": []}
    print(f"# Banking77 · {args.model} · {results['cpu']} · {platform.python_version()}")

    data = load_classification(args.data)
    reference = MTEB_ACCURACY.get(args.model)
    if args.protocol_backends:
        print("\nMTEB protocol (10 experiments x 8 per label, logistic regression)")
        print(f"{'backend':<12} {'accuracy':>9} {'f1':>8} {'MTEB':>8} {'seconds':>8}")
    for backend in args.protocol_backends:
        started = time.perf_counter()
        scores = evaluate_classification(data, load_model(args.model, backend))
        seconds = time.perf_counter() - started
        results["protocol"].append({"backend": backend, "seconds": seconds, **scores})
        mteb = f"{reference:.5f}" if reference else "-"
        print(
            f"{backend:<12} {scores['accuracy']:>9.5f} {scores['f1']:>8.5f} {mteb:>8}"
            f" {seconds:>8.1f}",
            flush=True,
        )

    encoder = load_model(args.model, args.backend)
    started = time.perf_counter()
    x_train = encoder.encode(data.train.texts, batch_size=32)
    x_test = encoder.encode(data.test.texts, batch_size=32)
    embed_seconds = time.perf_counter() - started
    y_train, y_test = np.array(data.train.labels), np.array(data.test.labels)
    print(
        f"\nFull train split ({len(y_train)} texts; test {len(y_test)}), {args.backend};"
        f" embedding both took {embed_seconds:.1f} s"
    )
    print(f"{'head':<28} {'accuracy':>9} {'macro-F1':>9} {'fit s':>7}")
    heads: dict = {
        f"{head}": EmbeddingClassifier(args.model, head=head, backend=args.backend)
        for head in ("logistic", "logistic-cv", "knn")
    }
    if args.extras:
        heads.update(extra_heads())
    for name, head in heads.items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an MLP or SVM stopping at max_iter
            if isinstance(head, EmbeddingClassifier):
                head.fit_vectors(x_train, y_train)
                predicted = head.predict_vectors(x_test)
            else:
                predicted = head.fit(x_train, y_train).predict(x_test)
        seconds = time.perf_counter() - started
        accuracy = float(accuracy_score(y_test, predicted))
        macro_f1 = float(f1_score(y_test, predicted, average="macro"))
        if name == "logistic-cv":
            name = f"logistic-cv (picked C={head.C_})"
        elif name == "knn":
            name = f"knn (k={head.n_neighbors}, cosine)"
        elif name == "logistic":
            name = "logistic (C=1, baseline)"
        results["heads"].append(
            {"head": name, "accuracy": accuracy, "macro_f1": macro_f1, "fit_seconds": seconds}
        )
        print(f"{name:<28} {accuracy:>9.4f} {macro_f1:>9.4f} {seconds:>7.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
