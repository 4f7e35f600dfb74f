"""Small pieces shared by the tests' real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import time
from http.server import BaseHTTPRequestHandler


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
