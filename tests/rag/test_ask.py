"""`ask` against a real OpenAI-compatible HTTP server on 127.0.0.1, and the local SmolLM2."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from embedstack import Collection
from embedstack.errors import InvalidInputError
from embedstack.rag.asking import REWRITE_SYSTEM
from embedstack.rag.llm import LLMError
from embedstack.rag.loader import load_llm
from embedstack.rag.local import DEFAULT_CONTEXT_WINDOW
from tests.http_helpers import send_chat_completion, send_json
from tests.search.test_hybrid import DOCS

# The first sentence says what source 1 says; the second is invented (a year and a maker that
# no source names) and cites a real source and one that was never given.
REPLY = (
    "Paper loaded crooked makes the printer jam [1]. The printer was made in 1987 by Acme [2, 9]."
)
INVENTED = "The printer was made in 1987 by Acme."
REWRITTEN = "Where is the printer that jams?"
CLI = Path(sys.executable).with_name("embedstack")


@pytest.fixture(scope="module")
def server():
    """/<mode>/v1/chat/completions: ok, slow, error or malformed; records every request."""
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body)
            mode = self.path.split("/")[1]
            if mode == "slow":
                time.sleep(3)
            if mode == "error":
                return send_json(self, 500, b'{"error": "model overloaded"}')
            if mode == "short" and len(prompt_sources(body)) > 2:
                too_long = b'{"error": {"message": "maximum context length is 300 tokens"}}'
                return send_json(self, 400, too_long)
            rewriting = body["messages"][0]["content"] == REWRITE_SYSTEM
            reply = REWRITTEN if rewriting else REPLY
            if mode == "malformed" and not body.get("stream"):
                return send_json(self, 200, b'{"choices": [{"message": ')
            broken = mode == "malformed"
            send_chat_completion(self, reply, bool(body.get("stream")), malformed=broken)

        def do_GET(self):
            if self.path == "/window/v1/models":  # as vLLM lists a model's context length
                models = {"data": [{"id": "other"}, {"id": "test", "max_model_len": 321}]}
                return send_json(self, 200, json.dumps(models).encode())
            send_json(self, 404, b'{"error": "not found"}')

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", requests
    httpd.shutdown()


@pytest.fixture(scope="module")
def kb(tmp_path_factory, model):
    collection = Collection.open(tmp_path_factory.mktemp("rag") / "kb", model)
    collection.add(list(DOCS.values()), ids=list(DOCS))
    yield collection
    collection.close()


def endpoint(server, mode="ok", **options):
    """The test server's chat endpoint; `mode` picks how it behaves (see `server`)."""
    url, _ = server
    return load_llm("openai:test", base_url=f"{url}/{mode}/v1", **options)


def prompt_sources(request: dict) -> list[str]:
    """The chunk texts of a recorded prompt, in prompt order."""
    user = request["messages"][-1]["content"]
    return re.findall(r"\[\d+\] \([^)]*\)\n(.*)", user)


def test_answer_with_citations_in_rank_order(server, kb):
    question = "Why does the printer jam?"
    answer = kb.ask(question, llm=endpoint(server), mode="generative")
    ranked = [hit.text for hit in kb.search(question, k=5)]
    assert prompt_sources(server[1][-1]) == ranked  # all five fit, best first
    assert answer.mode == "generative" and answer.raw_text == REPLY
    assert answer.text == f"Paper loaded crooked makes the printer jam [1]. {INVENTED}"
    assert answer.unsupported == [INVENTED]
    assert answer.sentences[1].reason.startswith("no source sentence says this")
    assert answer.dropped_citations == [2, 9]  # 2 does not support it; 9 was never given
    assert [c.number for c in answer.citations] == [1]
    assert answer.citations[0].chunk_id == kb.search(question, k=1)[0].id
    assert answer.citations[0].quote == DOCS[answer.citations[0].chunk_id]
    assert {c.chunk_id for c in answer.sources} == {h.id for h in kb.search(question, k=5)}


def test_auto_falls_back_to_quoting_the_sources_when_the_answer_is_unsupported(server, kb):
    question = "Why does the printer jam?"
    answer = kb.ask(question, llm=endpoint(server))  # mode="auto"
    assert answer.mode == "extractive" and answer.raw_text == REPLY
    assert answer.fallback.startswith("the LLM's answer is not supported by the sources")
    assert answer.text.startswith(DOCS["printer"].rstrip(".") + " [1]")
    assert answer.unsupported == [] and answer.citations[0].chunk_id == "printer"


def test_the_prompt_respects_the_token_budget(server, kb):
    llm = endpoint(server, context_window=250)
    answer = kb.ask("Why does the printer jam?", llm=llm, answer_tokens=64, mode="generative")
    sent = server[1][-1]
    ranked = [hit.text for hit in kb.search("Why does the printer jam?", k=5)]
    given = prompt_sources(sent)
    assert 1 <= len(given) < 5 and given == ranked[: len(given)]  # lowest-ranked dropped
    used = sum(llm.count_tokens(m["content"]) for m in sent["messages"])
    assert used + 64 <= 250
    assert len(answer.sources) == len(given)
    with pytest.raises(InvalidInputError, match="no room for even one source"):
        kb.ask("Why does the printer jam?", llm=endpoint(server, context_window=100))


def test_streaming_gives_the_same_answer(server, kb):
    plain = kb.ask("Why does the printer jam?", llm=endpoint(server), mode="generative")
    stream = kb.ask("Why does the printer jam?", llm=endpoint(server), stream=True,
                    mode="generative")  # fmt: skip
    pieces = list(stream)
    assert len(pieces) > 3 and "".join(pieces) == plain.raw_text
    assert stream.answer.text == plain.text and stream.answer.citations == plain.citations


def test_no_evidence_means_no_llm_call(server, kb):
    calls = len(server[1])
    answer = kb.ask("Why does the printer jam?", llm=endpoint(server), min_relevance=0.99)
    assert not answer.grounded and answer.text == "The documents do not say."
    assert answer.citations == [] and len(server[1]) == calls


def test_follow_up_questions_are_rewritten_before_retrieval(server, kb):
    history = [
        {"role": "user", "content": "Why does the printer jam?"},
        {"role": "assistant", "content": "Paper loaded crooked [1]."},
    ]
    answer = kb.ask("and where is it?", llm=endpoint(server), history=history)
    rewrite_request = server[1][-2]
    assert rewrite_request["messages"][0]["content"] == REWRITE_SYSTEM
    assert [m["content"] for m in rewrite_request["messages"][1:]] == [
        "Why does the printer jam?", "Paper loaded crooked [1].", "and where is it?"
    ]  # fmt: skip
    assert answer.search_query == REWRITTEN
    assert answer.sources[0].chunk_id == "printer"


def test_endpoint_failures_are_clear(server, kb):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    down = load_llm("openai:test", base_url=f"http://127.0.0.1:{closed}/v1")
    cases = [
        (down, False, "cannot reach"),
        (endpoint(server, "slow", timeout=1), False, "timed out"),
        (endpoint(server, "error"), False, "HTTP 500"),
        (endpoint(server, "malformed"), False, "did not return an OpenAI-style"),
        (endpoint(server, "malformed"), True, "malformed stream event"),
    ]
    for llm, stream, words in cases:
        with pytest.raises(LLMError, match=words):
            result = kb.ask("Why does the printer jam?", llm=llm, stream=stream,
                            mode="generative")  # fmt: skip
            if stream:
                list(result)
        # "auto" answers anyway, from the sources, and says why
        result = kb.ask("Why does the printer jam?", llm=llm, stream=stream)
        answer = result if not stream else (list(result), result.answer)[1]
        assert answer.mode == "extractive" and answer.citations[0].chunk_id == "printer"
        assert answer.fallback.startswith("the LLM failed")  # auto always streams: it stops early
        assert words in answer.fallback or "malformed stream event" in answer.fallback


def test_cli_ask_json_stream_and_history(server, kb, tmp_path):
    url = f"{server[0]}/ok/v1"
    history = tmp_path / "chat.json"
    args = [str(CLI), "ask", str(kb.folder), "Why does the printer jam?", "--llm", "openai:t",
            "--base-url", url, "--history", str(history)]  # fmt: skip
    result = subprocess.run([*args, "--json", "--mode", "generative"], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["text"].endswith(INVENTED) and answer["dropped_citations"] == [2, 9]
    assert answer["unsupported"] == [INVENTED]
    assert [t["role"] for t in json.loads(history.read_text())] == ["user", "assistant"]
    streamed = subprocess.run([*args, "--stream"], capture_output=True, text=True, timeout=120)
    assert streamed.returncode == 0 and REWRITTEN not in streamed.stdout
    assert streamed.stdout.startswith("Paper loaded crooked")  # the LLM's words as they came
    assert "not supported by the sources" in streamed.stdout  # then the check, and the quotes
    assert DOCS["printer"].rstrip(".") + " [1]" in streamed.stdout
    assert len(json.loads(history.read_text())) == 4
    down_url = "http://127.0.0.1:9/v1"
    down = [*args[:4], "--llm", "openai:t", "--base-url", down_url]
    failed = subprocess.run([*down, "--mode", "generative"], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert failed.returncode == 2 and failed.stderr.startswith("error: cannot reach")
    quoted = subprocess.run(down, capture_output=True, text=True, timeout=120)  # mode auto
    assert quoted.returncode == 0 and "(the LLM failed: cannot reach" in quoted.stdout
    assert DOCS["printer"].rstrip(".") + " [1]" in quoted.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_local_smollm2_in_process_and_served(kb):
    """The offline model answers; `serve-llm` serves the same model over the OpenAI API."""
    question = "When is lunch served in the canteen?"
    local = kb.ask(question, llm="smollm2", answer_tokens=40)
    assert local.grounded and local.text.strip() and local.llm == "smollm2"
    assert all(1 <= c.number <= len(local.sources) for c in local.citations)
    assert "lunch" in {s.chunk_id for s in local.sources}

    port = free_port()
    server = subprocess.Popen(
        [str(CLI), "serve-llm", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert server.poll() is None, server.stderr.read()
            time.sleep(0.5)
        advertised = load_llm("openai:smollm2", base_url=url).context_window
        assert advertised == DEFAULT_CONTEXT_WINDOW  # read from serve-llm's /v1/models
        served = kb.ask(question, llm="openai:smollm2", base_url=url, answer_tokens=40)
        assert served.raw_text == local.raw_text  # same model, same prompt, greedy decoding
        streamed = kb.ask(question, llm="openai:smollm2", base_url=url, answer_tokens=40,
                          stream=True)  # fmt: skip
        assert "".join(streamed) == local.raw_text
        # A client that stops reading a stream (auto mode does, at an unsupported sentence)
        # frees the model for the next request at once, not at its timeout.
        body = {"model": "smollm2", "stream": True, "max_tokens": 200,
                "messages": [{"role": "user", "content": "Tell a long story about lunch."}]}
        with httpx.Client(timeout=30) as client:
            for _ in range(2):
                with client.stream("POST", f"{url}/chat/completions", json=body) as response:
                    next(response.iter_lines())
                started = time.monotonic()
                reply = client.post(f"{url}/chat/completions", json={**body, "stream": False,
                                                                     "max_tokens": 8})
                assert reply.status_code == 200 and time.monotonic() - started < 20
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_session_keeps_the_conversation(server, kb):
    first = kb.ask("Why does the printer jam?", llm=endpoint(server), session="alice")
    assert server[1][-1]["messages"][0]["content"] != REWRITE_SYSTEM  # nothing to rewrite yet
    follow_up = kb.ask("and where is it?", llm=endpoint(server), session="alice", stream=True)
    assert server[1][-1]["messages"][0]["content"] == REWRITE_SYSTEM  # the session's turns
    "".join(follow_up)
    assert follow_up.answer.search_query == REWRITTEN
    assert kb.conversation("alice") == [
        {"role": "user", "content": "Why does the printer jam?"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "and where is it?"},
        {"role": "assistant", "content": follow_up.answer.text},
    ]
    assert kb.conversation("bob") == []
    with pytest.raises(InvalidInputError, match="not both"):
        kb.ask(
            "x", llm=endpoint(server), session="alice", history=[{"role": "user", "content": "y"}]
        )


def test_the_context_window_comes_from_the_endpoint_when_it_says(server):
    assert endpoint(server, "window").context_window == 321
    assert endpoint(server).context_window == 8192  # no /models: the default
    assert endpoint(server, "window", context_window=1000).context_window == 1000


@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_the_endpoint_finds_too_long_loses_its_last_sources(server, kb, stream):
    question = "Why does the printer jam?"
    result = kb.ask(question, llm=endpoint(server, "short"), stream=stream, mode="generative")
    if stream:
        "".join(result)
        result = result.answer
    ranked = [hit.id for hit in kb.search(question, k=5)]
    assert [c.chunk_id for c in result.sources] == ranked[:2]  # the best two, still in order
    assert result.citations[0].number == 1
