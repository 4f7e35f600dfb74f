"""Collections over HTTP against a live server: records, search in every mode, uploads with
an ingest job, answers streamed as server-sent events, health and metrics."""

from __future__ import annotations

import concurrent.futures
import json
import re

import httpx
import pytest

from embedstack.errors import LLMError
from tests.ingest.makers import pdf_bytes

RECORDS = [
    {"id": "lunch", "text": "The canteen serves lunch from noon until two o'clock.",
     "metadata": {"team": "facilities", "year": 2024}},
    {"id": "printer", "text": "The printer on the second floor jams when the tray is overfilled.",
     "metadata": {"team": "it", "year": 2023}},
    {"id": "vpn", "text": "Connect to the VPN before opening the internal wiki from home.",
     "metadata": {"team": "it", "year": 2024}},
    {"id": "parking", "text": "Visitors park in the garage on Elm Street; spaces are free.",
     "metadata": {"team": "facilities", "year": 2022}},
]  # fmt: skip


@pytest.fixture(scope="module")
def kb(client):
    created = client.post("/collections", json={"name": "office"})
    assert created.status_code == 201, created.text
    added = client.post("/collections/office/records", json={"records": RECORDS})
    assert added.json() == {"ids": [r["id"] for r in RECORDS]}
    yield "office"
    client.delete("/collections/office")


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["hits"]]


def test_collections_are_listed_with_their_stats(client, kb):
    listed = {c["name"]: c for c in client.get("/collections").json()["collections"]}
    assert listed[kb]["count"] == 4 and listed[kb]["model"] == "all-MiniLM-L6-v2"
    assert "path" not in listed[kb]  # the server's file system stays private
    again = client.post("/collections", json={"name": kb})
    assert again.status_code == 409 and again.json()["error"]["code"] == "collection_exists"
    for bad in ("../escape", ".hidden", "a/b", "x" * 65):
        response = client.post("/collections", json={"name": bad})
        assert response.status_code == 422, bad
    assert client.get("/collections/nowhere").json()["error"]["code"] == "collection_not_found"


def test_search_modes_filters_and_explain(client, kb):
    url = f"/collections/{kb}/search"
    assert ids(client.post(url, json={"query": "what time is lunch?", "k": 1})) == ["lunch"]
    assert ids(client.post(url, json={"query": "paper stuck", "mode": "dense", "k": 1})) == [
        "printer"
    ]
    assert ids(client.post(url, json={"query": "VPN wiki", "mode": "keyword", "k": 1})) == ["vpn"]
    filtered = client.post(
        url, json={"query": "where do I go", "filter": {"team": "it", "year": {"$gte": 2024}}}
    )
    assert ids(filtered) == ["vpn"]
    explained = client.post(url, json={"query": "lunch", "k": 2, "explain": True}).json()
    stages = explained["hits"][0]["stages"]
    assert {"dense", "keyword", "hybrid_rank"} <= set(stages)
    plain = client.post(url, json={"query": "lunch", "k": 2}).json()
    assert "stages" not in plain["hits"][0]


def test_rerank_diversity_vector_and_more_like_this(client, kb):
    url = f"/collections/{kb}/search"
    reranked = client.post(url, json={"query": "printer paper jam", "rerank": "builtin", "k": 2})
    assert ids(reranked)[0] == "printer"
    diverse = client.post(url, json={"query": "office", "diversity": 0.7, "k": 4})
    assert sorted(ids(diverse)) == sorted(r["id"] for r in RECORDS)
    vector = client.post(
        "/v1/embeddings", json={"input": "free parking for guests", "encoding_format": "float"}
    ).json()["data"][0]["embedding"]
    assert ids(client.post(url, json={"vector": vector, "k": 1})) == ["parking"]
    like = ids(client.post(url, json={"like": "printer", "k": 3}))
    assert "printer" not in like and len(like) == 3
    missing = client.post(url, json={"like": "nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "record_not_found"
    both = client.post(url, json={"query": "x", "like": "printer"})
    assert both.status_code == 422


def test_records_get_browse_and_delete(client):
    assert client.post("/collections", json={"name": "scratch"}).status_code == 201
    try:
        rows = [{"text": f"note number {n}", "metadata": {"n": n}} for n in range(5)]
        written = client.post("/collections/scratch/records", json={"records": rows}).json()["ids"]
        page = client.get("/collections/scratch/records", params={"offset": 1, "limit": 2}).json()
        assert page["total"] == 5 and [r["id"] for r in page["records"]] == written[1:3]
        one = client.get(f"/collections/scratch/records/{written[0]}").json()
        assert one == {"id": written[0], "text": "note number 0", "metadata": {"n": 0}}
        assert client.delete(f"/collections/scratch/records/{written[0]}").json() == {"deleted": 1}
        gone = client.get(f"/collections/scratch/records/{written[0]}")
        assert gone.status_code == 404
        assert client.delete(f"/collections/scratch/records/{written[0]}").status_code == 404
        assert client.get("/collections/scratch").json()["count"] == 4
    finally:
        assert client.delete("/collections/scratch").json() == {"deleted": "scratch"}
    assert client.get("/collections/scratch").status_code == 404


def sse_events(lines) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_upload_ingests_in_the_background_with_progress_and_failures(client, live_server):
    assert client.post("/collections", json={"name": "uploads"}).status_code == 201
    pdf = pdf_bytes([["Volcanoes form where tectonic plates meet."],
                     ["Glaciers carve U-shaped valleys over millennia."]])  # fmt: skip
    files = [
        ("files", ("geology.pdf", pdf, "application/pdf")),
        ("files", ("notes.md", b"# Notes\n\nThe museum opens at nine.\n", "text/markdown")),
        ("files", ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "application/pdf")),
    ]
    started = client.post("/collections/uploads/files", files=files, data={"chunk_tokens": 16})
    assert started.status_code == 202, started.text
    job = started.json()["job"]
    assert job["files_total"] == 3 and job["state"] in ("queued", "running")
    with client.stream("GET", f"/jobs/{job['id']}/events") as stream:
        events = sse_events(stream.iter_lines())
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) <= {"progress"}
    final = events[-1][1]
    assert final["files_done"] == final["files_total"] == 3 and final["chunks_done"] >= 3
    report = final["report"]
    assert report["added"] == 2 and report["failed"] == 1
    assert report["files"]["failed"][0]["path"] == "broken.pdf"
    assert client.get(f"/jobs/{job['id']}").json()["state"] == "done"
    info = client.get("/collections/uploads").json()
    assert info["files"] == 2 and info["formats"] == {"pdf": 1, "markdown": 1}
    hit = client.post(
        "/collections/uploads/search", json={"query": "how are valleys shaped by ice", "k": 1}
    ).json()["hits"][0]
    assert "Glaciers" in hit["text"] and hit["metadata"]["page"] == 2
    assert hit["metadata"]["file_name"] == "geology.pdf"
    again = client.post(
        "/collections/uploads/files", files=files[1:2], data={"chunk_tokens": 16}
    ).json()["job"]
    with client.stream("GET", f"/jobs/{again['id']}/events") as stream:
        assert sse_events(stream.iter_lines())[-1][1]["report"]["unchanged"] == 1
    assert not list((live_server.root / "uploads" / "files").glob(".upload-*"))
    assert client.get("/jobs/nope").status_code == 404
    client.delete("/collections/uploads")


def test_ask_streams_the_answer_then_its_citations(client, kb):
    body = {"question": "When is lunch served in the canteen?", "stream": True, "max_tokens": 40}
    with client.stream("POST", f"/collections/{kb}/ask", json=body) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = sse_events(stream.iter_lines())
    tokens = [data["text"] for name, data in events if name == "token"]
    name, answer = events[-1]
    assert name == "answer" and tokens and "".join(tokens) == answer["raw_text"]
    assert answer["grounded"] and answer["sources"][0]["chunk_id"] == "lunch"
    assert answer["sources"][0]["quote"].startswith("The canteen serves lunch")
    for citation in answer["citations"]:
        assert 1 <= citation["number"] <= len(answer["sources"])
    plain = client.post(f"/collections/{kb}/ask", json={**body, "stream": False}).json()
    assert plain["raw_text"] == answer["raw_text"]  # greedy decoding: the same answer
    off_topic = client.post(
        f"/collections/{kb}/ask", json={"question": "Who won the 1966 World Cup final?"}
    ).json()
    assert off_topic["grounded"] is False  # nothing relevant: the LLM is not asked


class NoLLM:
    """Stands in for the server's LLM: loading it fails the request."""

    name = "none"

    def get(self):
        raise LLMError("this server has no LLM")


def test_ask_extractive_quotes_the_sources_without_an_llm(client, kb, live_server, monkeypatch):
    monkeypatch.setattr(live_server.state, "llm", NoLLM())
    url = f"/collections/{kb}/ask"
    body = {"question": "When is lunch served in the canteen?", "mode": "extractive"}
    response = client.post(url, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["mode"] == "extractive" and answer["llm"] == "" and answer["fallback"] == ""
    assert answer["text"].startswith("The canteen serves lunch from noon until two o'clock [1].")
    first = answer["sentences"][0]
    assert first["supported"] and first["sources"] == [1] and answer["unsupported"] == []
    assert answer["citations"][0]["chunk_id"] == "lunch"
    evidence = answer["evidence"][0]
    assert evidence["chunk_id"] == "lunch" and evidence["source"] == 1
    assert evidence["text"] == RECORDS[0]["text"][evidence["start"] : evidence["end"]]
    with client.stream("POST", url, json={**body, "stream": True}) as stream:
        events = sse_events(stream.iter_lines())
    assert events[-1][0] == "answer" and events[-1][1]["text"] == answer["text"]
    assert "".join(data["text"] for name, data in events if name == "token") == answer["text"]

    # the other modes need the LLM; an unknown mode is refused before anything is loaded
    needs = client.post(url, json={**body, "mode": "auto"})
    assert needs.status_code == 502 and "no LLM" in needs.json()["error"]["message"]
    refused = client.post(url, json={**body, "mode": "creative"})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_input"
    assert error["param"] == "mode" and "auto" in error["message"]
    assert set(refused.json()) == {"error"}


# With no system message SmolLM2 (8-bit weights) ends "Say hello." at once: an empty reply.
GREETING = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say hello."},
]


def test_chat_completions_alongside(client):
    reply = client.post(
        "/v1/chat/completions",
        json={"messages": GREETING, "max_tokens": 8},
    ).json()
    assert reply["object"] == "chat.completion" and reply["choices"][0]["message"]["content"]


def test_concurrent_requests_share_model_calls(live_server, client):
    """32 clients sending one sentence each at once: far fewer than 32 model calls."""

    def batches() -> tuple[float, float]:
        text = client.get("/metrics").text
        count = re.search(r'embedstack_batch_texts_count\{model="all-MiniLM-L6-v2"\} (\S+)', text)
        total = re.search(r'embedstack_batch_texts_sum\{model="all-MiniLM-L6-v2"\} (\S+)', text)
        return (float(count.group(1)), float(total.group(1))) if count and total else (0, 0)

    before_calls, before_texts = batches()
    sentences = [f"Concurrent request number {n} about embeddings." for n in range(32)]
    barrier = concurrent.futures.ThreadPoolExecutor(32)
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        send = lambda s: http.post("/v1/embeddings", json={"input": s}).status_code  # noqa: E731
        for _ in range(3):
            statuses = list(barrier.map(send, sentences))
            assert statuses == [200] * 32
    barrier.shutdown()
    calls, texts = batches()
    assert texts - before_texts == 96
    assert calls - before_calls < 96 / 2, calls - before_calls  # several texts per model call
    metrics = client.get("/metrics").text
    assert 'embedstack_requests_total{method="POST",route="/v1/embeddings",status="200"}' in metrics
    assert "embedstack_queue_depth" in metrics and "embedstack_request_seconds_bucket" in metrics


def test_health_and_the_page(client):
    assert client.get("/health").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
