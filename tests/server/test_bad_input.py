"""Bad input to a live server, route by route: malformed JSON, wrong types, empty and oversized
input, unknown collections, models, records and jobs, lone surrogates, bad records, vectors and
filters, bad uploads and wrong API keys.

Each is answered 4xx with OpenAI's error envelope and a message that names the problem. After
every test the server still embeds, and the collection made before the bad requests holds
exactly the records (ids, texts, metadata), vectors and files it held.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.server.conftest import API_KEY, LiveServer

COLLECTION = "bad-input"
RECORDS = [
    {"id": "r1", "text": "The cat sat on the mat.", "metadata": {"lang": "en", "n": 1}},
    {"id": "r2", "text": "Stock markets fell sharply.", "metadata": {"lang": "en", "tags": ["x"]}},
    {"id": "r3", "text": "Le chat dort sur le canapé.", "metadata": {"lang": "fr", "n": 3.5}},
]
LIMIT = 2048  # inputs or records per request
MB = 1024 * 1024
DIM = 384  # all-MiniLM-L6-v2
ENVELOPE = {"message", "type", "param", "code"}


# ---- helpers ---------------------------------------------------------------------------------


def assert_error(
    response: httpx.Response,
    status: int,
    code: str | None = None,
    *,
    says: tuple[str, ...] = (),
    param: str | None | type[Any] = Any,
) -> dict[str, Any]:
    """A `status` answer whose body is exactly OpenAI's envelope, and whose message says what
    went wrong (every word of `says`, case-insensitive)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == ENVELOPE, error
    kind = "authentication_error" if status == 401 else "invalid_request_error"
    assert error["type"] == kind, error
    assert isinstance(error["code"], str) and error["code"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert isinstance(error["message"], str) and len(error["message"]) >= 8, error
    if code is not None:
        assert error["code"] == code, error
    if param is not Any:
        assert error["param"] == param, error
    for words in says:
        assert words.lower() in error["message"].lower(), (words, error["message"])
    return error


def post_raw(http: httpx.Client, path: str, body: bytes, **headers: str) -> httpx.Response:
    """POST bytes as they are: lone surrogates and broken JSON that httpx would not write."""
    return http.post(path, content=body, headers={"content-type": "application/json", **headers})


def snapshot(http: httpx.Client, root: Path, name: str = COLLECTION) -> dict[str, Any]:
    """Everything a bad request must leave alone: the collections, and of `name` its count,
    records, files on disk and what a search finds (so its vectors too)."""
    info = http.get(f"/collections/{name}")
    records = http.get(f"/collections/{name}/records", params={"limit": 1000})
    hits = http.post(f"/collections/{name}/search", json={"query": "a cat on a mat", "k": 10})
    assert info.status_code == records.status_code == hits.status_code == 200, hits.text
    uploads = root / name / "files"
    return {
        "collections": [c["name"] for c in http.get("/collections").json()["collections"]],
        "count": info.json()["count"],
        "files": info.json()["files"],
        "records": records.json(),
        "hits": [(hit["id"], round(hit["score"], 6)) for hit in hits.json()["hits"]],
        "uploads": sorted(p.name for p in uploads.iterdir()) if uploads.is_dir() else [],
        "folders": sorted(p.name for p in root.iterdir()),
    }


def fifty_mb(before: bytes, after: bytes) -> bytes:
    """A 50 MB JSON body that is valid but for its size."""
    return before + b"a" * (50 * MB - len(before) - len(after)) + after


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as client:
        yield client


@pytest.fixture(scope="module")
def stored(http: httpx.Client) -> Iterator[None]:
    """The collection that was there before the bad requests."""
    assert http.post("/collections", json={"name": COLLECTION}).status_code == 201
    added = http.post(f"/collections/{COLLECTION}/records", json={"records": RECORDS})
    assert added.status_code == 200, added.text
    yield
    http.delete(f"/collections/{COLLECTION}")


@pytest.fixture(autouse=True)
def nothing_changes(stored: None, http: httpx.Client, live_server: LiveServer) -> Iterator[None]:
    before = snapshot(http, live_server.root)
    assert before["records"] == {"total": len(RECORDS), "records": RECORDS}
    yield
    good = http.post("/v1/embeddings", json={"input": ["still serving", "yes"]})
    assert good.status_code == 200, good.text
    assert [len(item["embedding"]) for item in good.json()["data"]] == [DIM, DIM]
    assert snapshot(http, live_server.root) == before


@pytest.fixture
def scratch(http: httpx.Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """A collection of the test's own, deleted afterwards, for input that is stored."""
    name = f"scratch-{request.node.name.split('[')[0].removeprefix('test_')}"[:64]
    assert http.post("/collections", json={"name": name}).status_code == 201
    yield name
    assert http.delete(f"/collections/{name}").status_code == 200


# ---- malformed bodies ------------------------------------------------------------------------

JSON_ROUTES = [
    "/v1/embeddings",
    "/tokenize",
    "/rerank",
    "/v1/chat/completions",
    "/collections",
    f"/collections/{COLLECTION}/records",
    f"/collections/{COLLECTION}/search",
    f"/collections/{COLLECTION}/ask",
]
MALFORMED = [
    b'{"input": ',
    b'{"input": "a",}',
    b"{'input': 'a'}",
    b'{"input": "a"} {"input": "b"}',
    b"input=a&model=b",
]


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_malformed_json(http, path):
    for body in MALFORMED:
        assert_error(post_raw(http, path, body), 422, "invalid_input", says=("not valid JSON",))


def test_a_body_that_is_not_utf8(http):
    for path in JSON_ROUTES:
        response = post_raw(http, path, b'{"input": "caf\xe9"}')  # Latin-1
        assert_error(response, 400, says=("body",))


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null", b""])
def test_a_body_that_is_not_an_object(http, body):
    for path in JSON_ROUTES:
        response = post_raw(http, path, body)
        assert_error(response, 422, "invalid_input")


# ---- /v1/embeddings: wrong types, empty input, too many inputs ---------------------------------


@pytest.mark.parametrize(
    "body, param, says",
    [
        ({"input": 5}, "input", ("valid string",)),
        ({"input": None}, "input", ("valid string",)),
        ({"input": {"text": "a"}}, "input", ("valid string",)),
        ({"input": ["a", 5]}, "input", ()),
        ({"input": ["a", None]}, "input", ()),
        ({"input": [["a"]]}, "input", ()),
        ({"input": [1.5, 2]}, "input", ()),
        ({"input": [True, 101]}, "input", ()),
        ({"input": [[101, False]]}, "input", ()),
        ({"text": "a"}, "input", ("required",)),
        ({"input": "a", "model": 7}, "model", ("string",)),
        ({"input": "a", "dimensions": "many"}, "dimensions", ("integer",)),
        ({"input": "a", "dimensions": 0}, "dimensions", ("greater than",)),
        ({"input": "a", "dimensions": DIM + 1}, "dimensions", ("385", "384")),
        ({"input": "a", "encoding_format": "hex"}, "encoding_format", ("float", "base64")),
    ],
)
def test_embeddings_wrong_types(http, body, param, says):
    response = http.post("/v1/embeddings", json=body)
    assert_error(response, 422, "invalid_input", param=param, says=says)


@pytest.mark.parametrize(
    "value, says",
    [
        ([], ("empty",)),
        ("", ("input 0", "empty")),
        (["a", ""], ("input 1", "empty")),
        ([[]], ("input 0", "empty token array")),
        ([[101, 102], []], ("input 1", "empty token array")),
        ([101, 999_999], ("token id 999999", "vocabulary")),
        ([[101], [-1]], ("token id -1", "vocabulary")),
    ],
)
def test_embeddings_empty_input(http, value, says):
    response = http.post("/v1/embeddings", json={"input": value})
    assert_error(response, 422, "invalid_input", says=says)


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/embeddings", {"input": ["a"] * (LIMIT + 1)}),
        ("/v1/embeddings", {"input": [[101, 102]] * (LIMIT + 1)}),
        ("/tokenize", {"input": ["a"] * (LIMIT + 1)}),
        ("/rerank", {"query": "a", "documents": ["b"] * (LIMIT + 1)}),
        (f"/collections/{COLLECTION}/records", {"records": [{"text": "a"}] * (LIMIT + 1)}),
    ],
    ids=["texts", "token-arrays", "tokenize", "rerank", "records"],
)
def test_too_many_inputs(http, path, body):
    response = http.post(path, json=body)
    assert_error(response, 413, "limit_exceeded", says=(f"{LIMIT + 1}", f"{LIMIT}"))


def test_the_limit_itself_is_accepted(http):
    response = http.post("/v1/embeddings", json={"input": [f"text {i}" for i in range(LIMIT)]})
    assert response.status_code == 200, response.text
    assert [item["index"] for item in response.json()["data"]] == list(range(LIMIT))


# ---- a 50 MB body ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, before, after",
    [
        ("/v1/embeddings", b'{"input": "', b'"}'),
        ("/collections", b'{"name": "', b'"}'),
        (f"/collections/{COLLECTION}/records", b'{"records": [{"id": "r1", "text": "', b'"}]}'),
        (f"/collections/{COLLECTION}/search", b'{"query": "', b'"}'),
    ],
    ids=["embeddings", "collections", "records", "search"],
)
def test_a_50_mb_body(http, path, before, after):
    response = post_raw(http, path, fifty_mb(before, after))
    assert_error(response, 413, "limit_exceeded", says=("larger than", "32 MB"))


def test_a_50_mb_body_without_a_length(http):
    """Chunked: no Content-Length to refuse up front, so the bytes are counted as they come."""
    body = fifty_mb(b'{"records": [{"id": "r1", "text": "', b'"}]}')
    chunks = (body[start : start + MB] for start in range(0, len(body), MB))
    response = http.post(
        f"/collections/{COLLECTION}/records",
        content=chunks,
        headers={"content-type": "application/json"},
    )
    assert_error(response, 413, "limit_exceeded", says=("32 MB",))


def test_a_50_mb_body_is_refused_before_it_is_read(live_server):
    """The answer comes while all but 64 KB of the declared 50 MB are still unsent."""
    address = urlsplit(live_server.url)
    head = (
        f"POST /collections/{COLLECTION}/records HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {50 * MB}\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head + b'{"records": [{"text": "' + b"a" * 65_536)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65_536)
            assert chunk, f"the server closed the connection without an answer: {reply!r}"
            reply += chunk
        header, _, body = reply.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        while len(body) < int(fields["content-length"]):
            chunk = sock.recv(65_536)
            assert chunk, "the answer was cut short"
            body += chunk
    assert lines[0].startswith("HTTP/1.1 413"), lines[0]
    assert fields["connection"] == "close"
    error = json.loads(body)["error"]
    assert set(error) == ENVELOPE and error["code"] == "limit_exceeded", error


# ---- unknown collections, models, records, jobs and routes -----------------------------------

MISSING = "no-such-collection"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", f"/collections/{MISSING}", None),
        ("DELETE", f"/collections/{MISSING}", None),
        ("GET", f"/collections/{MISSING}/records", None),
        ("GET", f"/collections/{MISSING}/records/r1", None),
        ("DELETE", f"/collections/{MISSING}/records/r1", None),
        ("POST", f"/collections/{MISSING}/records", {"records": [{"text": "hello"}]}),
        ("POST", f"/collections/{MISSING}/search", {"query": "cat"}),
        ("POST", f"/collections/{MISSING}/ask", {"question": "Where is the cat?"}),
    ],
)
def test_unknown_collection(http, live_server, method, path, body):
    response = http.request(method, path, json=body)
    assert_error(response, 404, "collection_not_found", says=(MISSING,))
    assert not (live_server.root / MISSING).exists()


def test_upload_to_an_unknown_collection(http, live_server):
    response = http.post(f"/collections/{MISSING}/files", files={"files": ("a.txt", b"hello")})
    assert_error(response, 404, "collection_not_found", says=(MISSING,))
    assert not (live_server.root / MISSING).exists()


@pytest.mark.parametrize("name", ["has space", ".hidden", "a" * 65, "semi;colon", "ünïcode"])
def test_invalid_collection_name(http, name):
    assert_error(
        http.get(f"/collections/{name}"), 422, "invalid_input", param="name", says=("name",)
    )
    created = http.post("/collections", json={"name": name})
    assert_error(created, 422, "invalid_input", param="name", says=("invalid collection name",))


def test_existing_collection(http):
    response = http.post("/collections", json={"name": COLLECTION, "index": "hnsw"})
    assert_error(response, 409, "collection_exists", param="name", says=(COLLECTION,))


@pytest.mark.parametrize("model", ["no-such-model", "../../etc/passwd", "/etc/passwd", "gpt-4"])
@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/embeddings", {"input": "hello"}),
        ("/tokenize", {"input": "hello"}),
        ("/rerank", {"query": "cat", "documents": ["a cat", "a dog"]}),
        ("/collections", {"name": "never-made"}),
    ],
)
def test_unknown_model(http, path, body, model):
    response = http.post(path, json={**body, "model": model})
    assert_error(response, 404, "model_not_found", says=(repr(model), "all-MiniLM-L6-v2"))


@pytest.mark.parametrize(
    "method, path, body, code",
    [
        ("GET", f"/collections/{COLLECTION}/records/nope", None, "record_not_found"),
        ("DELETE", f"/collections/{COLLECTION}/records/nope", None, "record_not_found"),
        ("POST", f"/collections/{COLLECTION}/search", {"like": "nope"}, "record_not_found"),
        ("GET", "/jobs/nope", None, "job_not_found"),
        ("GET", "/jobs/nope/events", None, "job_not_found"),
    ],
)
def test_unknown_record_or_job(http, method, path, body, code):
    assert_error(http.request(method, path, json=body), 404, code, says=("'nope'",))


def test_unknown_route_and_method(http):
    assert_error(http.post("/v2/embeddings", json={"input": "a"}), 404, "not_found")
    assert_error(http.get("/v1/embeddings"), 405, "method_not_allowed")
    assert_error(http.put(f"/collections/{COLLECTION}", json={}), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "query, param",
    [({"limit": "abc"}, "limit"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset")],
)
def test_bad_query_parameters(http, query, param):
    response = http.get(f"/collections/{COLLECTION}/records", params=query)
    assert_error(response, 422, "invalid_input", param=param, says=(param,))


# ---- lone surrogates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/embeddings", rb'{"input": "\ud800"}'),
        ("/v1/embeddings", rb'{"input": ["fine", "half \udfff a pair"]}'),
        ("/tokenize", rb'{"input": ["\ud83d"]}'),
        ("/rerank", rb'{"query": "\ud800", "documents": ["a"]}'),
        ("/rerank", rb'{"query": "a", "documents": [{"text": "\udc00"}]}'),
        ("/rerank", rb'{"query": "a", "texts": ["ok", "\udc00"]}'),
        (f"/collections/{COLLECTION}/records", rb'{"records": [{"text": "\ud800"}]}'),
        (f"/collections/{COLLECTION}/records", rb'{"records": [{"id": "\ud800", "text": "a"}]}'),
        (
            f"/collections/{COLLECTION}/records",
            rb'{"records": [{"id": "r1", "text": "new", "metadata": {"\ud800": 1}}]}',
        ),
        (
            f"/collections/{COLLECTION}/records",
            rb'{"records": [{"text": "a", "metadata": {"k": ["ok", {"deep": "\udbff"}]}}]}',
        ),
        (f"/collections/{COLLECTION}/search", rb'{"query": "cat \ud800"}'),
        (f"/collections/{COLLECTION}/search", rb'{"query": "cat", "filter": {"lang": "\ud800"}}'),
        (f"/collections/{COLLECTION}/search", rb'{"query": "cat", "filter": {"\ud800": "en"}}'),
        (
            f"/collections/{COLLECTION}/search",
            rb'{"query": "cat", "filter": {"lang": {"$in": ["en", "\ud800"]}}}',
        ),
        (f"/collections/{COLLECTION}/ask", rb'{"question": "where \ud800 is the cat?"}'),
    ],
)
def test_lone_surrogate(http, path, body):
    assert_error(post_raw(http, path, body), 422, says=("lone surrogate",))


def test_lone_surrogate_in_names(http):
    created = post_raw(http, "/collections", rb'{"name": "\ud800"}')
    assert_error(created, 422, "invalid_input", param="name", says=("invalid collection name",))
    for path, body in [
        ("/v1/embeddings", rb'{"input": "a", "model": "\ud800"}'),
        ("/collections", rb'{"name": "fine-name", "model": "\ud800"}'),
    ]:
        assert_error(post_raw(http, path, body), 404, "model_not_found", says=("unknown model",))


# ---- records, vectors and filters ------------------------------------------------------------

RECORDS_PATH = f"/collections/{COLLECTION}/records"
DEEP: Any = "leaf"
for _ in range(65):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    "records, says",
    [
        ([], ("nothing to add",)),
        ([{"text": ""}], ("row 0", "text is empty")),
        ([{"text": " \n\t"}], ("row 0", "text is empty")),
        ([{"text": "fine"}, {"id": "", "text": "x"}], ("row 1", "id")),
        ([{"id": "d", "text": "a"}, {"id": "d", "text": "b"}], ("duplicate id 'd'",)),
        ([{"id": "r1", "text": "replaced?"}, {"text": ""}], ("row 1", "text is empty")),
        ([{"id": "r2", "text": "ok", "metadata": {"a": DEEP}}], ("row 0", "levels")),
    ],
)
def test_records_refused_all_or_nothing(http, records, says):
    """A bad row refuses the whole request: the good rows before it (r1 too) are not written."""
    response = http.post(RECORDS_PATH, json={"records": records})
    assert_error(response, 422, "invalid_input", says=says)


@pytest.mark.parametrize(
    "body, param",
    [
        ({"records": [{"text": 5}]}, "records"),
        ({"records": [{"id": "x"}]}, "records"),
        ({"records": [{"text": "a", "id": 7}]}, "records"),
        ({"records": [{"text": "a", "metadata": ["not", "an", "object"]}]}, "records"),
        ({"records": {"text": "a"}}, "records"),
        ({"record": [{"text": "a"}]}, "records"),
    ],
)
def test_records_wrong_types(http, body, param):
    assert_error(http.post(RECORDS_PATH, json=body), 422, "invalid_input", param=param)


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity"])
def test_records_metadata_that_is_not_json(http, value):
    body = b'{"records": [{"id": "r1", "text": "x", "metadata": {"a": ' + value + b"}}]}"
    assert_error(post_raw(http, RECORDS_PATH, body), 422, "invalid_input", says=("metadata",))


SEARCH_PATH = f"/collections/{COLLECTION}/search"


@pytest.mark.parametrize(
    "body, status, code, says",
    [
        ({}, 422, "invalid_input", ("exactly one of",)),
        ({"query": "cat", "like": "r1"}, 422, "invalid_input", ("exactly one of",)),
        ({"query": ""}, 422, "invalid_input", ("empty",)),
        ({"vector": [0.1] * 10}, 422, "invalid_input", ("dimension", "10", "384")),
        ({"vector": [0.1] * (DIM + 1)}, 422, "invalid_input", ("dimension", "385")),
        ({"vector": []}, 422, "invalid_input", ("dimension",)),
        ({"vector": [0.0] * DIM}, 422, "invalid_input", ("zeros",)),
        ({"vector": ["a"] * DIM}, 422, "invalid_input", ("vector",)),
        ({"vector": [0.1] * DIM, "mode": "keyword"}, 422, "invalid_input", ("query text",)),
        ({"query": "cat", "k": 0}, 422, "invalid_input", ("k",)),
        ({"query": "cat", "mode": "fuzzy"}, 422, "invalid_input", ("mode",)),
        ({"query": "cat", "diversity": 2}, 422, "invalid_input", ("diversity",)),
        ({"query": "cat", "rerank": "gpt"}, 422, "invalid_input", ("rerank",)),
        ({"query": "cat", "filter": ["lang", "en"]}, 422, "invalid_input", ("filter",)),
        ({"query": "cat", "filter": {"$regex": "c.t"}}, 422, "filter", ("$regex",)),
        ({"query": "cat", "filter": {"n": {"$near": 1}}}, 422, "filter", ("$near",)),
        ({"query": "cat", "filter": {"n": {"$gt": [1]}}}, 422, "filter", ("single value",)),
        ({"query": "cat", "filter": {"n": {"$gt": True}}}, 422, "filter", ("booleans",)),
        ({"query": "cat", "filter": {"lang": {"$in": []}}}, 422, "filter", ("non-empty list",)),
        ({"query": "cat", "filter": {"$and": []}}, 422, "filter", ("non-empty list",)),
        ({"query": "cat", "filter": {"$or": {"lang": "en"}}}, 422, "filter", ("$or",)),
        ({"query": "cat", "filter": {"lang": {}}}, 422, "filter", ("empty condition",)),
        ({"query": "cat", "filter": {"": "en"}}, 422, "filter", ("field names",)),
        ({"query": "cat", "filter": {"lang": None}}, 422, "filter", ("lang",)),
    ],
)
def test_bad_search(http, body, status, code, says):
    assert_error(http.post(SEARCH_PATH, json=body), status, code, says=says)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_search_vectors_that_are_not_numbers(http):
    for value in (b"NaN", b"Infinity", b"1e39"):  # the last overflows float32
        body = b'{"vector": [' + b", ".join([value] * DIM) + b"]}"
        assert_error(post_raw(http, SEARCH_PATH, body), 422, "invalid_input", says=("NaN",))


def test_filters_past_the_limits(http):
    deep: dict[str, Any] = {"lang": "en"}
    for _ in range(40):
        deep = {"$and": [deep]}
    response = http.post(SEARCH_PATH, json={"query": "cat", "filter": deep})
    assert_error(response, 413, "filter_limit", says=("levels deep", "32"))
    wide = {"$or": [{"n": i} for i in range(1001)]}
    response = http.post(SEARCH_PATH, json={"query": "cat", "filter": wide})
    assert_error(response, 413, "filter_limit", says=("1,001 conditions", "1,000"))


# ---- the other model routes, chat and ask (refused before the LLM loads) --------------------


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("/rerank", {"query": "a"}, None),
        ("/rerank", {"query": "a", "documents": ["b"], "texts": ["c"]}, None),
        ("/rerank", {"query": "a", "documents": []}, "documents"),
        ("/rerank", {"query": " ", "documents": ["b"]}, "query"),
        ("/rerank", {"query": "a", "documents": [5]}, "documents"),
        ("/rerank", {"query": "a", "documents": ["b"], "top_n": 0}, "top_n"),
        ("/tokenize", {"input": 5}, "input"),
        ("/tokenize", {}, "input"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": "hi"}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user"}]}, "messages"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100_000},
            "max_tokens",
        ),
        (f"/collections/{COLLECTION}/ask", {}, "question"),
        (f"/collections/{COLLECTION}/ask", {"question": 5}, "question"),
        (f"/collections/{COLLECTION}/ask", {"question": "why?", "k": 0}, "k"),
        (f"/collections/{COLLECTION}/ask", {"question": "why?", "max_tokens": -1}, "max_tokens"),
        (f"/collections/{COLLECTION}/ask", {"question": "why?", "session": "s" * 201}, "session"),
        (f"/collections/{COLLECTION}/ask", {"question": "why?", "mode": "creative"}, "mode"),
    ],
)
def test_other_routes_wrong_input(http, path, body, param):
    assert_error(http.post(path, json=body), 422, "invalid_input", param=param)


# ---- uploads ---------------------------------------------------------------------------------

FILES_PATH = f"/collections/{COLLECTION}/files"


@pytest.mark.parametrize(
    "files, data, param, says",
    [
        (None, {"chunk_tokens": "64"}, "files", ("files",)),
        ({"files": ("a.txt", b"hello")}, {"chunk_tokens": "many"}, "chunk_tokens", ("integer",)),
        ({"files": ("a.txt", b"hello")}, {"chunk_tokens": "4"}, "chunk_tokens", ("8",)),
        ({"files": ("a.txt", b"hello")}, {"overlap": "-1"}, "overlap", ("0",)),
        ({"files": ("..", b"hello")}, {}, None, ("no usable name",)),
        ({"files": ("/", b"hello")}, {}, None, ("no usable name",)),
    ],
)
def test_bad_uploads(http, files, data, param, says):
    response = http.post(FILES_PATH, files=files, data=data)
    assert_error(response, 422, "invalid_input", param=param, says=says)


def test_upload_sent_as_json(http):
    response = http.post(FILES_PATH, json={"files": ["a.txt"]})
    assert_error(response, 422, "invalid_input", param="files")


def test_long_non_ascii_file_name(http, live_server, scratch):
    """400 bytes of UTF-8 in 200 characters: stored under a name the file system takes (it
    was a 503), its extension kept."""
    name = "é" * 200 + ".md"
    response = http.post(
        f"/collections/{scratch}/files", files={"files": (name, b"# Title\n\nA cat on a mat.\n")}
    )
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    http.get(f"/jobs/{job['id']}/events")  # streams until the job ends
    done = http.get(f"/jobs/{job['id']}").json()
    assert done["state"] == "done", done
    assert done["report"]["added"] == 1, done
    [stored_name] = [p.name for p in (live_server.root / scratch / "files").iterdir()]
    assert stored_name.endswith(".md") and len(stored_name.encode()) <= 200
    assert stored_name.startswith("é" * 90)


@pytest.mark.xfail(
    strict=True,
    reason="ingest options are checked against the model only when the job runs: the upload "
    "is stored and answered 202, then the job fails",
)
def test_overlap_larger_than_the_chunk(http, live_server, scratch):
    response = http.post(
        f"/collections/{scratch}/files",
        files={"files": ("a.txt", b"hello world " * 40)},
        data={"chunk_tokens": "16", "overlap": "12"},
    )
    uploaded = live_server.root / scratch / "files"
    stored_files = list(uploaded.iterdir()) if uploaded.is_dir() else []
    if response.status_code == 202:
        http.get(f"/jobs/{response.json()['job']['id']}/events")  # let it end before cleanup
    assert_error(response, 422, "invalid_input", says=("overlap",))
    assert stored_files == []


def test_deeply_nested_jsonl_fields(http, scratch):
    line = json.dumps({"text": "a deep line", "extra": DEEP}).replace(
        '"leaf"', "[" * 200 + '"leaf"' + "]" * 200
    )
    response = http.post(
        f"/collections/{scratch}/files", files={"files": ("deep.jsonl", line.encode())}
    )
    assert response.status_code == 202, response.text
    job = response.json()["job"]["id"]
    http.get(f"/jobs/{job}/events")
    failed = http.get(f"/jobs/{job}").json()["report"]["files"]["failed"]
    assert [f["path"] for f in failed] == ["deep.jsonl"] and "64 levels" in failed[0]["reason"]
    records = http.get(f"/collections/{scratch}/records")
    assert records.status_code == 200, records.text


# ---- API keys --------------------------------------------------------------------------------

KEYED = "keyed-data"
KEY = API_KEY.encode()
WRONG_KEYS = {
    "no header": None,
    "wrong key": b"Bearer not-the-key",
    "empty": b"Bearer",
    "no scheme": KEY,
    "basic": b"Basic " + KEY,
    "token": b"Token " + KEY,
    "prefix": b"Bearer " + KEY[:-1],
    "longer": b"Bearer " + KEY + b"4",
    "case": b"Bearer " + KEY.upper(),
    "two keys": b"Bearer " + KEY + b", Bearer " + KEY,
}
KEYED_ROUTES = [
    ("GET", "/v1/models", None),
    ("POST", "/v1/embeddings", {"input": "hello"}),
    ("POST", "/tokenize", {"input": "hello"}),
    ("POST", "/rerank", {"query": "cat", "documents": ["a cat"]}),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    ("GET", "/collections", None),
    ("POST", "/collections", {"name": "intruder"}),
    ("GET", f"/collections/{KEYED}", None),
    ("DELETE", f"/collections/{KEYED}", None),
    ("GET", f"/collections/{KEYED}/records", None),
    ("POST", f"/collections/{KEYED}/records", {"records": [{"id": "k1", "text": "overwritten"}]}),
    ("GET", f"/collections/{KEYED}/records/k1", None),
    ("DELETE", f"/collections/{KEYED}/records/k1", None),
    ("POST", f"/collections/{KEYED}/search", {"query": "cat"}),
    ("POST", f"/collections/{KEYED}/ask", {"question": "Where is the cat?"}),
    ("GET", "/jobs/nope", None),
    ("GET", "/metrics", None),
]


@pytest.fixture(scope="module")
def keyed(keyed_server: LiveServer) -> Iterator[httpx.Client]:
    """A client with the right key, and a collection made with it."""
    with httpx.Client(
        base_url=keyed_server.url, headers={"Authorization": b"Bearer " + KEY}, timeout=120
    ) as client:
        assert client.post("/collections", json={"name": KEYED}).status_code == 201
        records = [{"id": "k1", "text": "A cat on a mat.", "metadata": {"secret": True}}]
        assert client.post(f"/collections/{KEYED}/records", json={"records": records}).is_success
        yield client
        client.delete(f"/collections/{KEYED}")


@pytest.mark.parametrize("header", list(WRONG_KEYS.values()), ids=list(WRONG_KEYS))
def test_wrong_api_key(keyed_server, keyed, header):
    before = snapshot(keyed, keyed_server.root, KEYED)
    headers = {} if header is None else {"Authorization": header}
    with httpx.Client(base_url=keyed_server.url, headers=headers, timeout=60) as intruder:
        for method, path, body in KEYED_ROUTES:
            response = intruder.request(method, path, json=body)
            assert_error(response, 401, "invalid_api_key", says=("API key", "Bearer"))
        upload = intruder.post(f"/collections/{KEYED}/files", files={"files": ("a.txt", b"hi")})
        assert_error(upload, 401, "invalid_api_key")
        assert intruder.get("/health").json()["status"] == "ok"  # open to load balancers
    assert snapshot(keyed, keyed_server.root, KEYED) == before
    assert keyed.post("/v1/embeddings", json={"input": "hello"}).status_code == 200
