"""The LLM's turn (one generation at a time) against a real server and a real OpenAI-compatible
endpoint on 127.0.0.1 (as tests/rag/test_ask.py): a client that leaves a streamed answer frees
the turn at once, and requests waiting for the turn leave the rest of the server free."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from embedstack.server.config import ServerConfig
from embedstack.server.llm import MAX_WAITING
from tests.http_helpers import send_chat_completion, send_json
from tests.server.conftest import LiveServer, running

# Streamed 7 characters every 0.25 s: ~15 s in all, far longer than a freed turn may take.
LONG_REPLY = "The canteen serves lunch from noon until two o'clock [1]. " + "It is hot. " * 30
HOLD = "hold"  # a plain request with this text is answered only once the test says so


@dataclass
class Endpoint:
    url: str
    held: threading.Event = field(default_factory=threading.Event)  # HOLD is being answered
    release: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def endpoint() -> Iterator[Endpoint]:
    """/v1/chat/completions: streams LONG_REPLY slowly; answers HOLD when released, else at once."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if body.get("stream"):
                # the server hangs up mid-answer when its client has gone
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    send_chat_completion(self, LONG_REPLY, True, pause=0.25)
                return
            if body["messages"][-1]["content"] == HOLD:
                found.held.set()
                found.release.wait(30)
            send_chat_completion(self, "Hello.", False)

        def do_GET(self):
            send_json(self, 404, b'{"error": "not found"}')

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found = Endpoint(f"http://127.0.0.1:{httpd.server_port}/v1")
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield found
    finally:
        found.release.set()
        httpd.shutdown()


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[LiveServer, Endpoint]]:
    """A server whose LLM is the endpoint above."""
    with endpoint() as llm:
        config = ServerConfig(collections=tmp_path, llm="openai:test", llm_base_url=llm.url)
        with running(config) as live:
            yield live, llm


def chat(http: httpx.Client, text: str, timeout: float = 10.0) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": text}]}
    return http.post("/v1/chat/completions", json=body, timeout=timeout)


def test_a_streamed_answer_whose_client_leaves_frees_the_llm_at_once(served):
    live, _ = served
    record = {"id": "lunch", "text": "The canteen serves lunch from noon until two o'clock."}
    question = {"question": "When is lunch served in the canteen?", "stream": True,
                "mode": "generative"}  # fmt: skip
    with live.client(timeout=60) as http:
        # GloVe word vectors load in a second (the default model is built into ONNX first)
        created = http.post("/collections", json={"name": "kb", "model": "glove-6b-50d"})
        assert created.status_code == 201, created.text
        assert http.post("/collections/kb/records", json={"records": [record]}).is_success
        with http.stream("POST", "/collections/kb/ask", json=question) as stream:
            assert stream.status_code == 200
            first = next(line for line in stream.iter_lines() if line.startswith("data: "))
            assert "text" in json.loads(first.removeprefix("data: "))
        # the client has gone, ~14 s of the answer unread: the turn is the next request's
        started = time.monotonic()
        try:
            reply = chat(http, "hi", timeout=8)
        except httpx.ReadTimeout:
            pytest.fail("the LLM's turn was still held by the abandoned answer after 8 s")
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "Hello."
        assert time.monotonic() - started < 3


def test_requests_waiting_for_the_llm_leave_the_server_free(served):
    """One generation holds the turn and MAX_WAITING + 6 more requests arrive: MAX_WAITING wait
    (without taking the worker threads /health and search need), the other 6 get a 503."""
    live, llm = served
    extra = 6
    with ThreadPoolExecutor(MAX_WAITING + extra + 1) as pool, live.client(timeout=30) as http:
        try:
            holding = pool.submit(chat, http, HOLD, 30)
            assert llm.held.wait(10), "the first request never reached the LLM"
            waiting = [pool.submit(chat, http, "hi", 30) for _ in range(MAX_WAITING + extra)]
            deadline = time.monotonic() + 10
            while sum(f.done() for f in waiting) < extra and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # the rest have arrived and wait
            started = time.monotonic()
            try:
                assert http.get("/health", timeout=3).status_code == 200
                assert http.get("/collections", timeout=3).status_code == 200
            except httpx.ReadTimeout:
                pytest.fail("/health hung while requests waited for the LLM")
            assert time.monotonic() - started < 2
            refused = [f.result() for f in waiting if f.done()]
            assert not holding.done()
        finally:
            llm.release.set()
        assert holding.result().status_code == 200
        assert len(refused) == extra and {r.status_code for r in refused} == {503}
        error = refused[0].json()["error"]
        assert error["code"] == "llm_busy" and error["type"] == "server_error"
        assert f"{MAX_WAITING} requests are waiting" in error["message"]
        statuses = [f.result().status_code for f in waiting]
        assert statuses.count(200) == MAX_WAITING and statuses.count(503) == extra
