"""Schema-driven fuzzing: schemathesis reads the live server's /openapi.json and sends every
operation generated requests, valid and invalid (its coverage cases, then a bounded number of
random ones, the same each run). No answer may be a 5xx, every error is OpenAI's envelope, and
every upload's ingest job ends without an internal error.

The server is the test's own (random collections come and go there). Two paths in three name
one of two real collections (flat and HNSW index). Two bodies in three of the deep routes
(search, records, embeddings, rerank, tokenize) come from strategies that know their grammar:
one of query, vector or like, filters, metadata, token ids. /v1/chat/completions is left out
and /ask is fuzzed against missing collections only: a local LLM takes seconds per answer.
Their bad input is in test_bad_input.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from embedstack.server.app import create_app
from embedstack.server.config import ServerConfig
from embedstack.server.state import ServerState
from tests.server.conftest import LiveServer, running

COLLECTIONS = {"fuzz": "flat", "fuzz-hnsw": "hnsw"}  # real collections paths may name
RECORDS = [
    {"id": "r1", "text": "The cat sat on the mat.", "metadata": {"lang": "en", "n": 1}},
    {"id": "r2", "text": "Stock markets fell sharply today.", "metadata": {"lang": "en", "n": 2}},
    {"id": "r3", "text": "Le chat dort sur le canapé.", "metadata": {"lang": "fr", "n": 3}},
]
EXAMPLES = 100  # generated requests per operation, on top of schemathesis' coverage cases
SEED = 20240613
ENVELOPE_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory) -> Iterator[LiveServer]:
    with running(ServerConfig(collections=tmp_path_factory.mktemp("fuzz-collections"))) as live:
        with live.client() as http:
            for name in COLLECTIONS:
                _ensure_collection(http, name)
        yield live


@pytest.fixture(scope="module")
def http(fuzz_server: LiveServer) -> Iterator[httpx.Client]:
    with fuzz_server.client() as client:
        yield client


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """What schemathesis sends its cases with."""
    with requests.Session() as shared:
        yield shared


def _ensure_collection(http: httpx.Client, name: str) -> None:
    """A real collection with its records, made again if a DELETE removed some or all."""
    if http.get(f"/collections/{name}").status_code == 404:
        created = http.post("/collections", json={"name": name, "index": COLLECTIONS[name]})
        assert created.status_code == 201, created.text
    listed = http.get(f"/collections/{name}/records", params={"limit": 1000})
    assert listed.status_code == 200, listed.text
    if {"r1", "r2", "r3"} - {record["id"] for record in listed.json()["records"]}:
        added = http.post(f"/collections/{name}/records", json={"records": RECORDS})
        assert added.status_code == 200, added.text


def _load_schema() -> schemathesis.BaseSchema:
    """The app's OpenAPI document, what /openapi.json serves (test_fuzzed_schema_is_served
    checks that): pytest builds one test per operation from it at collection time, before
    any server runs."""
    state = ServerState(ServerConfig(collections=Path("unused")))
    document = create_app(state=state).openapi()
    state.close()
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.generation.update(
        max_examples=EXAMPLES, deterministic=True, database="none", no_shrink=True
    )
    loaded.config.seed = SEED
    return loaded


schema = _load_schema()


@schema.hook("before_generate_path_parameters")
def real_names(context, strategy):
    """Two times in three the path names a real collection (and one of its records), so
    requests get past the 404 and into the route. Never for /ask, which would load the LLM."""
    if "{name}" not in context.operation.path or context.operation.path.endswith("/ask"):
        return strategy
    real = st.tuples(strategy, st.sampled_from(sorted(COLLECTIONS))).map(
        lambda drawn: {
            **drawn[0],
            "name": drawn[1],
            **({"record_id": "r2"} if "record_id" in drawn[0] else {}),
        }
    )
    return st.one_of(strategy, real, real)


# Bodies the schema alone rarely produces (it cannot say "exactly one of query, vector, like"
# or what a filter looks like): two in three generated bodies of these routes are replaced by
# ones that get deep into the route, with edge cases in every field.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 2**80, 1e308, -1e308, 0.5, -0.0]),
    st.text(max_size=6),
)
FIELDS = st.one_of(
    st.sampled_from(["lang", "n", "missing", "", "$eq", "$not"]), st.text(max_size=4)
)
OPERATOR = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$x"])
CONDITION = st.one_of(
    SCALARS,
    st.dictionaries(OPERATOR, SCALARS | st.lists(SCALARS, max_size=3) | st.just({}), max_size=2),
)
FILTERS = st.recursive(
    st.dictionaries(FIELDS, CONDITION, max_size=3),
    lambda inner: st.dictionaries(
        st.sampled_from(["$and", "$or", "lang"]), st.lists(inner, max_size=3) | inner, max_size=2
    ),
    max_leaves=8,
)
DIM = 384  # all-MiniLM-L6-v2
VECTORS = st.one_of(
    st.sampled_from([[0.0] * DIM, [1.0] * DIM, [1e308] * DIM, [-1e-320] * DIM, [], [1.0]]),
    st.lists(st.floats(-2, 2), min_size=1, max_size=8).map(lambda head: (head * DIM)[:DIM]),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=5),
)
TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["cat", " ", "\x00", "mat cat mat", "é" * 3000, "\u200b", "AND OR NOT *", '"']),
)
SEARCHES = st.fixed_dictionaries(
    {},
    optional={
        "k": st.integers(1, 10_000),
        "filter": FILTERS,
        "mode": st.sampled_from(["hybrid", "dense", "keyword"]),
        "fusion": st.sampled_from(["rrf", "weighted"]),
        "dense_weight": st.floats(0, 1),
        "candidates": st.integers(1, 10_000),
        "rerank": st.just("builtin"),
        "rerank_depth": st.integers(1, 10_000),
        "diversity": st.floats(0, 1),
        "explain": st.booleans(),
    },
).flatmap(
    lambda fields: st.one_of(
        TEXTS.map(lambda query: {**fields, "query": query}),
        VECTORS.map(lambda vector: {**fields, "vector": vector}),
        st.sampled_from(["r1", "r2", "missing", ""]).map(lambda like: {**fields, "like": like}),
    )
)
DEEP = [1]
for _ in range(300):  # nested past what JSON encoders write (about 255 levels)
    DEEP = [DEEP]
METADATA = st.just({"deep": DEEP}) | st.dictionaries(
    st.text(max_size=5),
    st.recursive(
        SCALARS | st.just(DEEP),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=6,
    ),
    max_size=4,
)
RECORDS_BODIES = st.fixed_dictionaries(
    {
        "records": st.lists(
            st.fixed_dictionaries(
                {"text": TEXTS | st.text(min_size=1, max_size=40).filter(str.strip)},
                optional={
                    "id": st.one_of(
                        st.none(),
                        st.sampled_from(["r1", "", "a/b", "/x/", "q?#%2F"]),
                        st.text(min_size=1, max_size=8),
                    ),
                    "metadata": METADATA,
                },
            ),
            max_size=4,
        )
    }
)
TOKEN_IDS = st.lists(st.integers(-2, 31_000) | st.sampled_from([2**31, 2**64]), max_size=6)
EMBEDDINGS_BODIES = st.fixed_dictionaries(
    {
        "input": st.one_of(
            TEXTS, st.lists(TEXTS, max_size=4), TOKEN_IDS, st.lists(TOKEN_IDS, max_size=3)
        )
    },
    optional={
        "dimensions": st.integers(1, 400),
        "encoding_format": st.sampled_from(["float", "base64"]),
        "model": st.sampled_from(["", "all-MiniLM-L6-v2", "minilm", "clip", "../etc/passwd"]),
    },
)
RERANK_BODIES = st.fixed_dictionaries(
    {"query": TEXTS},
    optional={
        "documents": st.lists(TEXTS | TEXTS.map(lambda text: {"text": text}), max_size=4),
        "texts": st.lists(TEXTS, max_size=4),
        "top_n": st.integers(1, 10),
        "return_documents": st.booleans(),
        "return_text": st.booleans(),
    },
)
TARGETED = {
    ("POST", "/collections/{name}/search"): SEARCHES,
    ("POST", "/collections/{name}/records"): RECORDS_BODIES,
    ("POST", "/v1/embeddings"): EMBEDDINGS_BODIES,
    ("POST", "/rerank"): RERANK_BODIES,
    ("POST", "/tokenize"): st.fixed_dictionaries({"input": TEXTS | st.lists(TEXTS, max_size=3)}),
}


@schema.hook("before_generate_body")
def deep_bodies(context, strategy):
    targeted = TARGETED.get((context.operation.method.upper(), context.operation.path))
    return strategy if targeted is None else st.one_of(strategy, targeted, targeted)


# The LLM costs seconds an answer, and any valid chat request asks it; /ask is fuzzed against
# collections that do not exist only (the path hook above). Their bad input: test_bad_input.py.
schema = schema.exclude(path="/v1/chat/completions")


@pytest.mark.parametrize("record_id", ["a/b", "/lead", "trail/", "x/../y", "q?#%2F", "sp ace"])
def test_any_stored_id_can_be_read_and_deleted(http, record_id):
    """Ids the fuzzer may not draw: a record stored under one can be fetched and deleted."""
    url = f"/collections/fuzz/records/{quote(record_id, safe='')}"
    record = {"id": record_id, "text": "An odd id.", "metadata": {}}
    added = http.post("/collections/fuzz/records", json={"records": [record]})
    assert added.status_code == 200 and added.json()["ids"] == [record_id], added.text
    assert http.get(url).json() == record
    assert http.delete(url).json() == {"deleted": 1}
    assert http.get(url).json()["error"]["code"] == "record_not_found"


def test_fuzzed_schema_is_served(fuzz_server):
    with fuzz_server.client() as http:
        served = http.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == schema.raw_schema


@schema.parametrize()
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e308 vectors
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case, fuzz_server, http, session):
    response = case.call(base_url=fuzz_server.url, session=session, timeout=60)
    case.validate_response(response, checks=[not_a_server_error])
    content_type = response.headers.get("content-type", [""])[0]  # lists: repeated headers
    body = response.json() if content_type.startswith("application/json") else None
    if response.status_code >= 400:
        assert isinstance(body, dict) and set(body) == {"error"}, response.text
        assert set(body["error"]) == ENVELOPE_KEYS, body
        assert body["error"]["message"], body
    if response.status_code == 202:  # an upload: its job must end, and not in a bug
        assert isinstance(body, dict), response.text
        job = body["job"]["id"]
        http.get(f"/jobs/{job}/events")  # streams until the job ends
        ended = http.get(f"/jobs/{job}").json()
        assert ended["state"] in ("done", "failed"), ended
        assert not (ended["error"] or "").startswith("internal error"), ended
    name = (case.path_parameters or {}).get("name")
    if (
        case.method.upper() == "POST"
        and case.path.endswith("/records")
        and response.status_code == 200
    ):
        for record_id in body["ids"][:4]:  # what was stored can be read back
            if record_id in (".", ".."):  # URLs cannot carry these as a path segment
                continue
            stored = http.get(f"/collections/{name}/records/{quote(record_id, safe='')}")
            assert stored.status_code == 200, (record_id, stored.text)
            assert stored.json()["id"] == record_id
        found = http.post(f"/collections/{name}/search", json={"query": "cat", "k": 100})
        assert found.status_code == 200, found.text
    if case.method.upper() == "DELETE" and name in COLLECTIONS:
        _ensure_collection(http, name)
