"""`backend="auto"`: every runtime measured once on this CPU, the fastest faithful one chosen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedstack import load_model
from embedstack.errors import ModelLoadError
from embedstack.models import find_spec
from embedstack.models.cpu import this_cpu
from embedstack.models.runtime_choice import (
    MIN_COSINE,
    MIN_MEAN_COSINE,
    REFERENCE,
    calibration_texts,
    measure,
)
from embedstack.models.transformer_backend import runtime_choice_for, settled_runtime
from embedstack.settings import get_settings, reload_settings
from tests.cli.test_cli import assert_one_line_error, run


def test_calibration_texts_are_real_passages_and_queries():
    texts = calibration_texts()
    words = sorted(len(t.split()) for t in texts)
    assert len(texts) >= 30 and len(set(texts)) == len(texts)
    assert words[0] <= 8 and words[-1] >= 150  # short queries and chunk-sized passages


def test_auto_is_the_cached_fastest_faithful_runtime(model):
    """The session's default model ran `auto`: its choice is on disk, measured once, and is
    the fastest of the candidates that stayed faithful to fp32."""
    choice = runtime_choice_for(find_spec("all-MiniLM-L6-v2"))
    assert choice is not None and model.backend == choice.chosen
    ran = {t.backend: t for t in choice.trials if t.error is None}
    assert {REFERENCE, "onnx-int8", "torch"} <= set(ran)
    assert ran[REFERENCE].mean_cosine == pytest.approx(1.0)
    assert ran["torch"].min_cosine > 0.9999  # the same fp32 model on another runtime
    faithful = [t for t in ran.values() if t.faithful]
    assert max(faithful, key=lambda t: t.texts_per_s or 0).backend == choice.chosen
    assert all(t.mean_cosine >= MIN_MEAN_COSINE and t.min_cosine >= MIN_COSINE for t in faithful)
    files = list((get_settings().cache_dir / "runtimes").glob("all-MiniLM-L6-v2-*.json"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    assert load_model("all-MiniLM-L6-v2").backend == choice.chosen
    assert {f: f.stat().st_mtime_ns for f in files} == stamps  # read, not measured again


def test_settled_runtime_reads_the_choice_and_never_measures(model, tmp_path, monkeypatch):
    """The server's on-demand loads: the measured choice when there is one, else int8, and
    never a measurement on a request's path."""
    spec = find_spec("all-MiniLM-L6-v2")
    assert settled_runtime(spec) == model.backend  # the session's measured choice
    assert settled_runtime(find_spec("glove-6b-50d")) is None  # nothing to choose
    monkeypatch.setenv("EMBEDSTACK_CACHE_DIR", str(tmp_path))
    reload_settings()
    try:
        assert settled_runtime(spec) == "onnx-int8"  # not measured here: the first listed
        assert not (tmp_path / "runtimes").exists()  # and nothing was measured
    finally:
        monkeypatch.undo()
        reload_settings()


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: {**d, "chosen": "torch", "trials": ["onnx"]},  # a row that is not a row
        lambda d: {**d, "chosen": None},
        lambda d: {**d, "chosen": "tensorrt"},  # no such runtime: fp32 would run under its name
        lambda d: {**d, "chosen": "auto"},  # would recurse
        lambda d: {key: value for key, value in d.items() if key != "chosen"},
    ],
    ids=["trial-not-a-row", "chosen-null", "chosen-unknown", "chosen-auto", "chosen-missing"],
)
def test_a_damaged_choice_file_is_measured_again_not_trusted(model, tmp_path, monkeypatch, damage):
    """`settled_runtime` reads the file without measuring; a damaged one must neither stop the
    load nor name a runtime that is not a candidate."""
    spec = find_spec("all-MiniLM-L6-v2")
    assert runtime_choice_for(spec) is not None  # the session's own, measured
    (saved,) = (get_settings().cache_dir / "runtimes").glob("all-MiniLM-L6-v2-*.json")
    damaged = damage(json.loads(saved.read_text(encoding="utf-8")))
    monkeypatch.setenv("EMBEDSTACK_CACHE_DIR", str(tmp_path))
    reload_settings()
    try:
        (tmp_path / "runtimes").mkdir()
        (tmp_path / "runtimes" / saved.name).write_text(json.dumps(damaged), encoding="utf-8")
        assert settled_runtime(spec) == "onnx-int8"  # as if never measured: the fallback
    finally:
        monkeypatch.undo()
        reload_settings()


def test_static_int8_runs_by_name_and_auto_leaves_it_out():
    """openvino-int8 is slower one query at a time (see runtime_choice.CANDIDATES)."""
    from embedstack.models.transformer_backend import TRANSFORMER_BACKENDS, _candidates

    assert "openvino-int8" in TRANSFORMER_BACKENDS
    for name in ("all-MiniLM-L6-v2", "multilingual-e5-small", "all-mpnet-base-v2"):
        spec = find_spec(name)
        assert "openvino-int8" in spec.backends and "openvino-int8" not in _candidates(spec)
        assert "onnx-int8" in _candidates(spec)


def test_an_unfaithful_runtime_is_never_chosen_however_fast():
    """A 3-layer model posing as a runtime of the 6-layer one is ~2x faster and not faithful
    (its vectors are another model's): the choice must fall on a faithful runtime."""
    if not find_spec("paraphrase-MiniLM-L3-v2").installed():
        pytest.skip("needs embedstack[l3]")
    imposter = load_model("paraphrase-MiniLM-L3-v2", backend="onnx")
    encoders = {REFERENCE: load_model("all-MiniLM-L6-v2", backend="onnx"), "torch": imposter}
    choice, chosen = measure("all-MiniLM-L6-v2", list(encoders), encoders.__getitem__)
    trials = {t.backend: t for t in choice.trials}
    assert trials["torch"].mean_cosine is not None and not trials["torch"].faithful
    assert choice.chosen == REFERENCE and chosen is encoders[REFERENCE]


def test_a_runtime_that_cannot_run_is_reported_not_fatal():
    """A candidate that fails to load (an unknown runtime anywhere; bf16 on a CPU without it,
    OpenVINO missing) is a row with its reason; the others are still measured and the
    fastest faithful one is chosen."""

    def build(backend):
        return load_model("all-MiniLM-L6-v2", backend=backend)

    choice, chosen = measure(
        "all-MiniLM-L6-v2", ["onnx", "openvino-bf16", "no-such-runtime"], build
    )
    trials = {t.backend: t for t in choice.trials}
    assert "unknown backend 'no-such-runtime'" in str(trials["no-such-runtime"].error)
    assert trials["onnx"].faithful
    ran = [t for t in choice.trials if t.faithful]
    fastest = max(ran, key=lambda t: t.texts_per_s or 0.0)
    assert choice.chosen == fastest.backend == chosen.backend
    if not this_cpu().has_bf16:  # or OpenVINO is missing: either way, a reason
        assert "AMX or AVX-512-BF16" in str(trials["openvino-bf16"].error) or "pip install" in str(
            trials["openvino-bf16"].error
        )


def test_openvino_bf16_without_bf16_units_is_a_clear_error():
    if this_cpu().has_bf16:
        pytest.skip("this CPU has bf16 units")
    with pytest.raises(ModelLoadError, match="openvino"):
        load_model("all-MiniLM-L6-v2", backend="openvino-bf16")


def test_openvino_runs_the_fp32_export_faithfully():
    pytest.importorskip("openvino")
    texts = calibration_texts()
    fp32 = load_model("all-MiniLM-L6-v2", backend="onnx").encode(texts)
    got = load_model("all-MiniLM-L6-v2", backend="openvino").encode(texts)
    assert got.dtype == np.float32 and got.shape == fp32.shape
    assert (got * fp32).sum(axis=1).min() > 0.9999


def test_models_info_shows_the_measured_table(model):
    result = run("models", "info", "all-MiniLM-L6-v2", "--json")
    assert result.returncode == 0, result.stderr
    runtime = json.loads(result.stdout)["runtime"]
    assert runtime["chosen"] == model.backend and runtime["cpu"] == this_cpu().describe()
    rows = {row["backend"]: row for row in runtime["trials"]}
    assert rows[runtime["chosen"]]["faithful"] and rows[REFERENCE]["texts_per_s"] > 0
    table = run("models", "info", "all-MiniLM-L6-v2")
    assert f"auto runs {model.backend} on this CPU" in table.stdout
    assert_one_line_error(run("models", "info", "nope"), "unknown model 'nope'")
    # Entries with nothing to choose (one backend) show no table.
    static = json.loads(run("models", "info", "glove-6b-50d", "--json").stdout)
    assert static["runtime"] is None


def test_the_cpu_is_named_with_its_family_but_keyed_without_it():
    """Cloud VMs name every EPYC alike; the family and model tell two apart in benchmarks,
    while the runtime choice stays keyed by name and flags (no re-measuring for it)."""
    cpu = this_cpu()
    info = Path("/proc/cpuinfo")
    if not info.is_file() or "cpu family" not in info.read_text():
        pytest.skip("no /proc/cpuinfo with a cpu family line here")
    text = info.read_text()
    family = next(line for line in text.splitlines() if line.startswith("cpu family"))
    assert cpu.generation.startswith(f"family {family.partition(':')[2].strip()} model ")
    assert cpu.generation not in cpu.describe()


def test_openvino_first_calls_from_two_threads_at_once_finish():
    """A fresh process whose first OpenVINO inferences run on two threads at once: before the
    first calls were serialised this could deadlock in OpenVINO's bindings (seen in CI)."""
    pytest.importorskip("openvino")
    script = (
        "from embedstack import load_model\n"
        "model = load_model('all-MiniLM-L6-v2', backend='openvino')\n"
        "vectors = model.encode([f'passage {n} about threads and locks' for n in range(64)])\n"
        "print(len(vectors))\n"
    )
    for _ in range(3):  # the race was rare: a few fresh processes
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0 and done.stdout.strip() == "64", done.stderr[-2000:]
