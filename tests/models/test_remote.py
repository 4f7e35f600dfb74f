"""OpenAI-compatible endpoints, against a real HTTP server on 127.0.0.1 that embeds for real."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from embedstack import Collection, load_model
from embedstack.errors import ModelNotFoundError
from embedstack.models import RemoteModelError
from tests.http_helpers import send_json


@pytest.fixture(scope="module")
def server():
    """Serves /<mode>/v1/embeddings; mode picks good, slow, failing or malformed answers."""
    local = load_model("all-MiniLM-L6-v2", backend="onnx")
    seen_auth: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen_auth.append(self.headers.get("Authorization"))
            mode = self.path.split("/")[1]
            if mode == "slow":
                time.sleep(3)
            if mode == "error":
                return send_json(self, 500, b'{"error": "model overloaded"}')
            if mode == "malformed":
                return send_json(self, 200, b'{"data": [{"index": 0, "embed')
            texts = body["input"]
            vectors = local.encode(texts) * 3.0  # un-normalised, as some servers answer
            if mode == "short":
                vectors = vectors[:-1]
            data = [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)][::-1]
            send_json(self, 200, json.dumps({"object": "list", "data": data}).encode())

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", local, seen_auth
    httpd.shutdown()


def test_remote_vectors_match_the_local_model(server):
    url, local, seen_auth = server
    remote = load_model("openai:minilm", base_url=f"{url}/ok/v1", api_key="sk-test")
    texts = ["first text", "second one", "third"]
    vectors = remote.encode(texts, batch_size=2)  # two requests; answers arrive out of order
    assert remote.dim == 384 and vectors.shape == (3, 384)
    np.testing.assert_allclose(vectors, local.encode(texts), atol=1e-5)  # normalised again
    assert seen_auth[-1] == "Bearer sk-test"


def test_a_collection_can_use_a_remote_model(server, tmp_path):
    url, _, _ = server
    remote = load_model("openai:minilm", base_url=f"{url}/ok/v1")
    with Collection.open(tmp_path / "kb", remote) as kb:
        kb.add(["Paris is in France", "Bananas are yellow"], ids=["p", "b"])
        assert kb.search("French city", k=1)[0].id == "p"
        assert kb.config.model == "openai:minilm"


@pytest.mark.parametrize(
    "mode, message",
    [
        ("error", "answered HTTP 500"),
        ("malformed", "did not return OpenAI-style embeddings"),
        ("short", "returned 0 embeddings for 1 texts"),
    ],
)
def test_bad_answers_are_clear_errors(server, mode, message):
    url, _, _ = server
    with pytest.raises(RemoteModelError, match=message):
        load_model("openai:minilm", base_url=f"{url}/{mode}/v1")


def test_a_slow_endpoint_times_out(server):
    url, _, _ = server
    started = time.perf_counter()
    with pytest.raises(RemoteModelError, match="timed out"):
        load_model("openai:minilm", base_url=f"{url}/slow/v1", timeout=0.5)
    assert time.perf_counter() - started < 2.5


def test_a_refused_connection_is_a_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens here
    with pytest.raises(RemoteModelError, match="cannot reach"):
        load_model("openai:minilm", base_url=f"http://127.0.0.1:{port}/v1")


def test_remote_name_without_url_is_an_error():
    with pytest.raises(ModelNotFoundError, match="base_url"):
        load_model("openai:text-embedding-3-small")
