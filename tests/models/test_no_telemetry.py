"""Nothing leaves the machine: a model's first use (ONNX export, int8 quantization, OpenVINO
compile, NNCF quantisation) opens no connection but local ones, watched with strace in a fresh
cache and a home folder without any telemetry consent file (where ONNX Runtime, OpenVINO and
NNCF would report)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import PROJECT

LOCAL = re.compile(r'inet_addr\("127\.|inet_pton\(AF_INET6, "::1"')


def _can_trace() -> bool:
    """strace is installed and may trace (ptrace can be barred in a container)."""
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(["strace", "-o", os.devnull, "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_trace(), reason="needs strace, allowed to trace")
def test_a_first_use_connects_to_nothing_outside_the_machine(tmp_path):
    script = textwrap.dedent(
        """
        import importlib.util
        from embedstack import load_model
        from embedstack.models.onnx_backend import import_onnxruntime
        # ONNX Runtime before torch, as in a server whose first model was cached and whose
        # second is exported now: the order in which ONNX Runtime reports, unless told not to
        import_onnxruntime()
        backends = ["onnx-int8"]
        if importlib.util.find_spec("openvino"):
            backends.append("openvino")
        if importlib.util.find_spec("nncf"):  # quantises once, then OpenVINO runs the IR
            backends.append("openvino-int8")
        for backend in backends:
            assert load_model("all-MiniLM-L6-v2", backend=backend).encode(["hi"]).shape == (1, 384)
        print(*backends)
        """
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "EMBEDSTACK_CACHE_DIR": str(tmp_path / "cache")}
    for name in ("ORT_DISABLE_TELEMETRY", "NNCF_CI", "CI"):  # OpenVINO keeps quiet in CI: not here
        env.pop(name, None)
    trace = tmp_path / "strace.txt"
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=connect,sendto", "-s", "64", "-o", str(trace),
         sys.executable, "-c", script],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "onnx-int8" in done.stdout
    # the script's one line alone: NNCF's progress bars stay out of stdout (`--json` output)
    assert len(done.stdout.strip().splitlines()) == 1, done.stdout[-500:]
    calls = trace.read_text(encoding="utf-8").splitlines()
    remote = [c for c in calls if "AF_INET" in c and not LOCAL.search(c)]
    assert remote == [], remote[:5]  # not even a DNS lookup
    assert not [c for c in calls if "events" in c or "google" in c]
    assert not (home / "intel").exists()  # OpenVINO's telemetry never initialised
