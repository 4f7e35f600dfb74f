"""Offline by argument (`local_files_only=True`), never by changing the process environment."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from embedstack import load_model
from embedstack.models import find_spec
from tests.conftest import PROJECT

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def ours(environ) -> dict[str, str]:
    """The environment minus what torch sets for itself (TORCHINDUCTOR_CACHE_DIR on first use)."""
    return {k: v for k, v in environ.items() if not k.startswith("TORCHINDUCTOR_")}


def test_importing_the_model_modules_changes_no_variable():
    script = textwrap.dedent(
        """
        import os
        given = dict(os.environ)
        import embedstack, embedstack.models.torch_backend, embedstack.models.onnx_export
        import embedstack.search.cross_encoder, embedstack.rag.local
        print(sorted(k for k in {*given, *os.environ} if given.get(k) != os.environ.get(k)))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_torch_models_load_without_the_offline_variables(monkeypatch):
    from embedstack.search.cross_encoder import CrossEncoderReranker

    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    import torch  # noqa: F401  (its own import-time settings are not ours to judge)
    import transformers  # noqa: F401

    given = ours(os.environ)
    model = load_model("all-MiniLM-L6-v2", backend="torch")
    assert model.encode("offline").shape == (384,)
    reranker = CrossEncoderReranker(find_spec("all-MiniLM-L6-v2").locate())  # untrained head
    assert reranker.score("query", ["one text", "another"]).shape == (2,)
    assert ours(os.environ) == given
