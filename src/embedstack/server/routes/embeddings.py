"""OpenAI- and TEI-compatible model routes: /v1/embeddings, /v1/models, /rerank, /tokenize."""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from embedstack.errors import InvalidInputError, LimitExceededError
from embedstack.rows import check_text
from embedstack.search.rerank import load_reranker
from embedstack.server.deps import State
from embedstack.server.errors import HTTPError
from embedstack.server.models import ServedModel

router = APIRouter()

TokenArray = list[StrictInt]  # not booleans, floats or digit strings
INLINE_INPUTS = 16


class EmbeddingRequest(BaseModel):
    input: str | list[str] | TokenArray | list[TokenArray] = Field(
        description="A text, texts, or token ids of the model's tokenizer (one array or many)."
    )
    model: str | None = Field(None, description="A catalog model; the server's default if empty.")
    dimensions: int | None = Field(None, ge=1, description="Keep this many, then re-normalise.")
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


def json_response(body: Any, status: int = 200) -> Response:
    """orjson writes numpy arrays directly: several times faster than lists through FastAPI."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json"
    )


def _texts(served: ServedModel, items: list[Any], limit: int) -> tuple[list[str], list[int] | None]:
    """(texts, tokens per text) from an OpenAI `input`; each bad item is a clear 4xx. Texts'
    tokens are counted later, by the batcher's thread, off the event loop."""
    if not items:
        raise HTTPError(422, "input is empty: send at least one text", "invalid_input", "input")
    if len(items) > limit:
        raise LimitExceededError(f"{len(items)} inputs is more than the limit of {limit}")
    if isinstance(items[0], list):  # token arrays (pydantic made them all one kind)
        for position, ids in enumerate(items):
            if not ids:
                raise HTTPError(
                    422, f"input {position} is an empty token array", "invalid_input", "input"
                )
        return served.decode(items), [len(ids) for ids in items]
    for position, text in enumerate(items):
        if not text:
            raise HTTPError(422, f"input {position} is an empty string", "invalid_input", "input")
        check_text(text, f"input {position}")
    return items, None


@router.post("/v1/embeddings", summary="Embed texts (OpenAI's API)")
async def embeddings(request: EmbeddingRequest, state: State) -> Response:
    served = state.models.ready(request.model)
    if served is None:  # loading takes seconds: off the event loop
        served = await run_in_threadpool(state.models.get, request.model)
    items: list[Any] = [request.input] if isinstance(request.input, str) else list(request.input)
    if items and isinstance(items[0], int):
        items = [items]  # one token array
    if len(items) <= INLINE_INPUTS:  # checking a few texts costs less than a thread hop
        texts, counts = _texts(served, items, state.config.max_inputs)
    else:
        texts, counts = await run_in_threadpool(_texts, served, items, state.config.max_inputs)
    vectors, counts = await served.embed(texts, counts)
    if request.dimensions is not None:
        vectors = _truncate(vectors, request.dimensions, served.model.dim)
    if request.encoding_format == "base64":
        little_endian = vectors.astype("<f4", copy=False)
        encoded: list[Any] = [
            base64.b64encode(row.tobytes()).decode("ascii") for row in little_endian
        ]
    else:
        encoded = list(vectors)
    data = [
        {"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(encoded)
    ]
    usage = {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
    return json_response({"object": "list", "data": data, "model": served.name, "usage": usage})


def _truncate(vectors: np.ndarray, dimensions: int, dim: int) -> np.ndarray:
    """The first `dimensions` components, scaled back to unit length (cosine stays meaningful;
    a Matryoshka-trained model loses least, others more)."""
    if dimensions > dim:
        raise HTTPError(
            422, f"dimensions {dimensions} is more than the model's {dim}", "invalid_input",
            "dimensions",
        )  # fmt: skip
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return np.ascontiguousarray(cut / np.clip(norms, 1e-12, None), dtype=np.float32)


@router.get("/v1/models", summary="The models a request may name")
def models(state: State) -> dict[str, Any]:
    data = [
        {"id": spec.name, "object": "model", "created": 0, "owned_by": "embedstack",
         "dim": spec.dim, "max_tokens": spec.max_tokens, "modality": spec.modality}
        for spec in state.models.listed()
    ]  # fmt: skip
    if not any(entry["id"] == state.models.default for entry in data):
        data.insert(0, {"id": state.models.default, "object": "model", "created": 0,
                        "owned_by": "embedstack"})  # fmt: skip
    data.append(state.llm.describe())  # the chat model of /v1/chat/completions
    return {"object": "list", "data": data}


class Document(BaseModel):
    text: str


class RerankRequest(BaseModel):
    query: str
    documents: list[str | Document] | None = Field(None, description="Cohere's field")
    texts: list[str] | None = Field(None, description="TEI's field")
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False
    return_text: bool = False  # TEI's name for return_documents
    model: str | None = None


@router.post("/rerank", summary="Order documents by relevance to a query (Cohere/TEI shape)")
def rerank(request: RerankRequest, state: State) -> Any:
    if (request.documents is None) == (request.texts is None):
        raise HTTPError(422, "send either documents (Cohere) or texts (TEI)", "invalid_input")
    tei = request.texts is not None
    texts = request.texts if request.texts is not None else [
        d if isinstance(d, str) else d.text for d in request.documents or []
    ]  # fmt: skip
    if not request.query.strip():
        raise HTTPError(422, "the query is empty", "invalid_input", "query")
    if not texts:
        raise HTTPError(422, "nothing to rerank", "invalid_input", "texts" if tei else "documents")
    if len(texts) > state.config.max_inputs:
        raise LimitExceededError(f"{len(texts)} documents is more than the limit of "
                                 f"{state.config.max_inputs}")  # fmt: skip
    check_text(request.query, "query")
    for position, text in enumerate(texts):
        check_text(text, f"document {position}")
    served = state.models.get(request.model)
    scores = load_reranker("builtin", served.model).score(request.query, texts)
    order = np.argsort(-scores, kind="stable")[: request.top_n or len(texts)]
    if tei:
        return [
            {"index": int(i), "score": float(scores[i]),
             **({"text": texts[i]} if request.return_text else {})}
            for i in order
        ]  # fmt: skip
    results = [
        {"index": int(i), "relevance_score": float(scores[i]),
         **({"document": {"text": texts[i]}} if request.return_documents else {})}
        for i in order
    ]  # fmt: skip
    return {"results": results, "model": f"late-interaction:{served.name}"}


class TokenizeRequest(BaseModel):
    input: str | list[str]
    model: str | None = None


@router.post("/tokenize", summary="The model's own token ids for texts")
def tokenize(request: TokenizeRequest, state: State) -> dict[str, Any]:
    texts = [request.input] if isinstance(request.input, str) else request.input
    if len(texts) > state.config.max_inputs:
        raise LimitExceededError(f"{len(texts)} inputs is more than the limit of "
                                 f"{state.config.max_inputs}")  # fmt: skip
    for position, text in enumerate(texts):
        check_text(text, f"input {position}")
    served = state.models.get(request.model)
    if served.tokenizer is None:
        raise InvalidInputError(f"model {served.name!r} has no tokenizer")
    return {"tokens": served.token_ids(texts), "model": served.name}
