"""The real OpenAI, LangChain and LlamaIndex clients against a live server on 127.0.0.1.

Vectors must equal the Python API's with the same backend (cosine >= 0.9999).
"""

from __future__ import annotations

import base64
import re

import httpx
import numpy as np
import pytest

from embedstack import load_model
from tests.conftest import PROJECT

MODEL = "all-MiniLM-L6-v2"
TEXTS = [
    "The canteen serves lunch from noon until two.",
    "Quarterly revenue grew by eight percent.",
    "A cat sat on the warm windowsill.",
]


@pytest.fixture(scope="module")
def reference():
    return load_model(MODEL)


def assert_same(got, expected) -> None:
    got = np.asarray(got, dtype=np.float32)
    assert got.shape == expected.shape
    cosines = np.sum(got * expected, axis=1) / np.linalg.norm(got, axis=1)
    assert cosines.min() >= 0.9999, cosines


def test_openai_sdk_base64_default_and_float(live_server, reference):
    from openai import OpenAI

    client = OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0)
    default = client.embeddings.create(model=MODEL, input=TEXTS)  # the SDK asks for base64
    assert [d.index for d in default.data] == [0, 1, 2]
    assert default.model == MODEL
    assert default.usage.prompt_tokens == sum(len(ids) for ids in tokens(live_server, TEXTS))
    expected = reference.encode(TEXTS)
    assert_same([d.embedding for d in default.data], expected)
    floats = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    assert_same([floats.data[0].embedding], expected[:1])


def test_openai_sdk_dimensions_truncate_and_renormalise(live_server, reference):
    from openai import OpenAI

    client = OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0)
    short = client.embeddings.create(model=MODEL, input=TEXTS, dimensions=64)
    vectors = np.array([d.embedding for d in short.data], dtype=np.float32)
    assert vectors.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cut = reference.encode(TEXTS)[:, :64]
    assert_same(vectors, cut / np.linalg.norm(cut, axis=1, keepdims=True))


def tokens(live_server, texts) -> list[list[int]]:
    response = httpx.post(f"{live_server.url}/tokenize", json={"input": texts}, timeout=60)
    response.raise_for_status()
    return response.json()["tokens"]


def test_token_arrays_embed_like_their_text(live_server, reference):
    """Token ids of the model's tokenizer (what /tokenize gives, as in TEI) are accepted,
    one array or many, and embed as the text does."""
    ids = tokens(live_server, TEXTS)
    many = httpx.post(f"{live_server.url}/v1/embeddings", json={"input": ids}, timeout=60).json()
    assert_same([d["embedding"] for d in many["data"]], reference.encode(TEXTS))
    assert many["usage"]["prompt_tokens"] == sum(map(len, ids))
    one = httpx.post(f"{live_server.url}/v1/embeddings", json={"input": ids[1]}, timeout=60)
    assert_same([one.json()["data"][0]["embedding"]], reference.encode(TEXTS[1:2]))
    outside = httpx.post(f"{live_server.url}/v1/embeddings", json={"input": [10**7]}, timeout=60)
    assert outside.status_code == 422 and "vocabulary" in outside.json()["error"]["message"]


def test_base64_is_little_endian_float32(live_server, reference):
    body = {"input": TEXTS[2], "encoding_format": "base64"}
    response = httpx.post(f"{live_server.url}/v1/embeddings", json=body, timeout=60).json()
    raw = base64.b64decode(response["data"][0]["embedding"])
    assert len(raw) == 384 * 4
    assert_same([np.frombuffer(raw, dtype="<f4")], reference.encode(TEXTS[2:3]))


def project_sentences(count: int) -> list[str]:
    """Real sentences from the project's own documentation (present on every checkout)."""
    found: list[str] = []
    for path in sorted((PROJECT / "docs").glob("*.md")) + [PROJECT / "README.md"]:
        for sentence in re.split(r"(?<=[.!?])\s+", path.read_text(encoding="utf-8")):
            sentence = " ".join(sentence.split())
            if 20 <= len(sentence) <= 400 and sentence not in found:
                found.append(sentence)
    return [found[i % len(found)] + (f" ({i})" if i >= len(found) else "") for i in range(count)]


def test_langchain_embeds_1000_texts_in_one_call(live_server, reference):
    from langchain_openai import OpenAIEmbeddings

    texts = project_sentences(1000)
    assert len(set(texts)) == 1000
    embedder = OpenAIEmbeddings(
        model=MODEL, base_url=f"{live_server.url}/v1", api_key="unused",
        check_embedding_ctx_length=False, max_retries=0,
    )  # fmt: skip
    vectors = embedder.embed_documents(texts)
    assert len(vectors) == 1000
    sample = list(range(0, 1000, 37))
    assert_same([vectors[i] for i in sample], reference.encode([texts[i] for i in sample]))
    query = embedder.embed_query(texts[5])
    assert_same([query], reference.encode(texts[5:6]))


def test_llamaindex_openai_embedding(live_server, reference):
    from llama_index.embeddings.openai import OpenAIEmbedding

    embedder = OpenAIEmbedding(
        model_name=MODEL, api_base=f"{live_server.url}/v1", api_key="unused", max_retries=0
    )
    vectors = embedder.get_text_embedding_batch(TEXTS)
    assert_same(vectors, reference.encode(TEXTS))
    assert_same([embedder.get_query_embedding(TEXTS[0])], reference.encode(TEXTS[:1]))


def test_models_lists_the_installed_catalog_and_the_chat_model(client):
    listed = {entry["id"]: entry for entry in client.get("/v1/models").json()["data"]}
    assert listed[MODEL]["dim"] == 384 and listed[MODEL]["object"] == "model"
    assert listed["smollm2"]["kind"] == "chat" and listed["smollm2"]["context_length"] > 0
    mpnet = client.post("/v1/embeddings", json={"model": "all-mpnet-base-v2", "input": "x"})
    if "all-mpnet-base-v2" in listed:  # another installed catalog model loads on demand
        assert mpnet.status_code == 200 and len(mpnet.json()["data"][0]["embedding"]) == 768
    else:
        assert mpnet.status_code == 404
