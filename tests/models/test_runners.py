"""Runners share out their sessions (infer requests): one per concurrent call, and on OpenVINO
one over every core for a call that comes alone, with the same outputs."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embedstack.models.catalog import find_spec
from embedstack.models.onnx_backend import Workers
from embedstack.models.onnx_export import onnx_file
from embedstack.models.sbert_folder import read_sbert_folder
from embedstack.models.tokenization import TextTokenizer


def test_the_solo_worker_serves_a_lone_call_only_while_nothing_else_runs():
    workers = Workers(["one core", "other core"], solo="every core")
    with workers.take(alone=True) as worker:
        assert worker == "every core"
        with workers.take(alone=True) as second:  # another call meanwhile: a core of its own
            assert second in {"one core", "other core"}
    with workers.take(alone=False) as worker:
        assert worker in {"one core", "other core"}
        with workers.take(alone=True) as second:
            assert second in {"one core", "other core"} and second != worker
    with workers.take(alone=True) as worker:  # all returned: the solo one is free again
        assert worker == "every core"
    with Workers(["one core"], solo=None).take(alone=True) as worker:
        assert worker == "one core"


def test_concurrent_calls_never_share_a_worker():
    workers = Workers([0, 1], solo=2)
    holders = [0, 0, 0]
    clash = threading.Event()
    start = threading.Barrier(4)

    def call(alone: bool) -> None:
        start.wait()
        for _ in range(300):
            with workers.take(alone) as worker:
                holders[worker] += 1
                if holders[worker] > 1:
                    clash.set()
                holders[worker] -= 1

    threads = [threading.Thread(target=call, args=(n % 2 == 0,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not clash.is_set()


@pytest.mark.parametrize("backend", ["openvino", "openvino-int8"])
def test_openvino_gives_a_lone_call_the_same_token_vectors(backend):
    """The one-stream request over every core (a query's) and a one-core stream's agree to the
    bit, so a text's vector does not depend on whether it came alone."""
    pytest.importorskip("openvino")
    from embedstack.models.openvino_backend import OpenVinoTransformer

    spec = find_spec("all-MiniLM-L6-v2")
    folder = read_sbert_folder(spec.locate())
    path = onnx_file(spec.name, folder.transformer_dir, quantize=False)
    if backend == "openvino-int8":
        pytest.importorskip("nncf")
        from embedstack.models.openvino_int8 import quantized_ir
        from embedstack.models.runtime_choice import calibration_texts

        path = quantized_ir(path, folder.tokenizer_file, folder.max_seq_length, calibration_texts())
    runner = OpenVinoTransformer(path, backend, threads=2)
    tokenizer = TextTokenizer(folder.tokenizer_file, folder.max_seq_length)
    texts = ["How do I change the PIN of my debit card?", "A man is playing a flute."]
    for text in texts:
        batch = TextTokenizer.pad(tokenizer.encode([text]))
        alone = runner(batch, alone=True)
        on_one_core = runner(batch)
        assert alone.shape == on_one_core.shape == (1, batch["input_ids"].shape[1], 384)
        np.testing.assert_array_equal(alone, on_one_core)
