"""Small pieces shared by the tests' real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
from http.server import BaseHTTPRequestHandler


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: bytes) -> None:
    """Answer with a JSON body; the client may have given up first (timeout tests)."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        handler.wfile.write(payload)
