"""`embedstack serve` as users start it: a real process on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.http_helpers import wait_for_health
from tests.rag.test_ask import free_port

CLI = Path(sys.executable).with_name("embedstack")


def test_an_exposed_address_needs_a_key(tmp_path):
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        refused = subprocess.run(
            [str(CLI), "serve", "--host", host, "--collections", str(tmp_path)],
            capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"},
        )  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert "without an API key" in refused.stderr and "--api-key" in refused.stderr
    bad_key = subprocess.run(
        [str(CLI), "serve", "--host", "0.0.0.0", "--api-key", "ключ"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad_key.returncode == 2 and "ASCII" in bad_key.stderr


def test_serve_answers_on_loopback_with_its_key(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [str(CLI), "serve", "--port", str(port), "--collections", str(tmp_path / "kb"),
         "--api-key", "s3cret"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        health = wait_for_health(url, server)
        assert health.json()["status"] == "ok"  # /health needs no key
        body = {"input": "hello"}
        assert httpx.post(f"{url}/v1/embeddings", json=body, timeout=60).status_code == 401
        keyed = httpx.post(f"{url}/v1/embeddings", json=body, timeout=60,
                           headers={"Authorization": "Bearer s3cret"})  # fmt: skip
        assert keyed.status_code == 200 and len(keyed.json()["data"][0]["embedding"]) == 384
    finally:
        server.terminate()
        server.wait(timeout=30)
