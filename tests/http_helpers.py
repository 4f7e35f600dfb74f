"""Small pieces shared by the tests' real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from http.server import BaseHTTPRequestHandler

import httpx


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: bytes) -> None:
    """Answer with a JSON body; the client may have given up first (timeout tests)."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        handler.wfile.write(payload)


def send_chat_completion(
    handler: BaseHTTPRequestHandler,
    reply: str,
    stream: bool,
    piece: int = 7,
    pause: float = 0.0,
    malformed: bool = False,
) -> None:
    """Answer an OpenAI `/chat/completions` request with `reply`: one JSON body, or server-sent
    events of `piece` characters each `pause` seconds apart (`malformed`: a broken event after
    each), as the endpoints embedstack talks to do."""
    if not stream:
        answer = {"choices": [{"message": {"role": "assistant", "content": reply}}]}
        return send_json(handler, 200, json.dumps(answer).encode())
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()
    for start in range(0, len(reply), piece):
        event = {"choices": [{"delta": {"content": reply[start : start + piece]}}]}
        handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        if malformed:
            handler.wfile.write(b"data: {not json\n\n")
        handler.wfile.flush()
        time.sleep(pause)
    handler.wfile.write(b"data: [DONE]\n\n")


def wait_for_health(url: str, server: subprocess.Popen, timeout: float = 120) -> httpx.Response:
    """GET `url`/health until the server answers; fail with its stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(f"{url}/health", timeout=2)
        except httpx.TransportError:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
