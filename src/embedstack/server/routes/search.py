"""Search a collection (every mode, filters, rerank, diversity, explain) and ask it questions,
the answer streamed as server-sent events with its citations."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import partial
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from embedstack.errors import EmbedstackError
from embedstack.rag.answer import Answer
from embedstack.rag.asking import AnswerStream
from embedstack.rows import check_text
from embedstack.search.options import DEFAULT_CANDIDATES, DEFAULT_RERANK_DEPTH
from embedstack.server.deps import State
from embedstack.server.errors import HTTPError, error_code
from embedstack.server.streaming import stream_in_thread
from embedstack.types import Hit

router = APIRouter(prefix="/collections", tags=["search"])


class SearchRequest(BaseModel):
    query: str | None = Field(None, description="A text (hybrid, dense or keyword search).")
    vector: list[float] | None = Field(None, description="A query vector (dense search).")
    like: str | None = Field(None, description="A record id: more like that record.")
    k: int = Field(10, ge=1, le=10_000)
    filter: dict[str, Any] | None = None
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    fusion: Literal["rrf", "weighted"] = "rrf"
    dense_weight: float = Field(0.5, ge=0, le=1)
    candidates: int = Field(DEFAULT_CANDIDATES, ge=1, le=10_000)
    rerank: Literal["builtin"] | None = None
    rerank_depth: int = Field(DEFAULT_RERANK_DEPTH, ge=1, le=10_000)
    diversity: float = Field(0.0, ge=0, le=1)
    explain: bool = Field(False, description="Add each stage's score and rank to every hit.")


def _hit(hit: Hit, explain: bool) -> dict[str, Any]:
    found = hit.to_dict()
    if explain:
        found["stages"] = hit.scores_by_stage
    return found


@router.post("/{name}/search", summary="Search a collection")
def search(name: str, request: SearchRequest, state: State) -> dict[str, Any]:
    given = [f for f in ("query", "vector", "like") if getattr(request, f) is not None]
    if len(given) != 1:
        raise HTTPError(422, "send exactly one of query, vector or like", "invalid_input", "query")
    collection = state.collections.get(name)
    fields = request.model_dump(exclude={"query", "vector", "like", "explain"})
    started = time.perf_counter()
    if request.like is not None:
        hits = collection.similar(request.like, **fields)
    elif request.vector is not None:
        hits = collection.search(request.vector, **fields)
    else:
        assert request.query is not None
        check_text(request.query, "query")
        if collection.modality == "image" and request.mode != "keyword":
            # A text here would be read as a path on the server: examples are uploaded.
            raise HTTPError(
                422, f"{name!r} holds images: upload an example to /collections/{name}/search/"
                "image, send like (a record id), or search file names with mode keyword",
                "invalid_input", "query",
            )  # fmt: skip
        hits = collection.search(request.query, **fields)
    return {
        "hits": [_hit(hit, request.explain) for hit in hits],
        "seconds": round(time.perf_counter() - started, 4),
    }


class AskRequest(BaseModel):
    question: str
    k: int = Field(5, ge=1, le=100)
    stream: bool = False
    session: str | None = Field(None, max_length=200)
    min_relevance: float | None = Field(None, ge=-1, le=1)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    mode: Literal["auto", "extractive", "generative"] = Field(
        "auto",
        description="auto: the LLM's answer, checked against the sources, which are quoted "
        "instead when it is not supported; extractive: quote the sources' best sentences, no "
        "LLM; generative: the LLM's answer, its unsupported sentences marked.",
    )


@router.post("/{name}/ask", summary="Answer a question from a collection, with citations")
async def ask(name: str, request: AskRequest, state: State) -> Any:
    """The answer's sentences each come checked against the sources (`sentences`,
    `unsupported`), with the sources' best sentences as `evidence`."""
    check_text(request.question, "question")
    collection = state.collections.get(name)
    # Quoting the sources needs no LLM: loading one takes seconds (or fails, with an endpoint
    # that is down), so it is loaded only for the modes that call it.
    llm = None if request.mode == "extractive" else await run_in_threadpool(state.llm.get)

    def answer() -> Answer | AnswerStream:
        return collection.ask(
            request.question, request.k, llm, mode=request.mode, stream=request.stream,
            session=request.session, min_relevance=request.min_relevance,
            answer_tokens=request.max_tokens or state.config.answer_tokens,
        )  # fmt: skip

    # Whatever may call the LLM runs on its thread, waiting for its turn there (not in a
    # worker thread every other route needs).
    result = await (run_in_threadpool(answer) if llm is None else llm.run(answer))
    if isinstance(result, AnswerStream):
        if llm is not None:
            llm.check_room()
        # In a thread that closes the answer (and frees the LLM's turn) once the client goes.
        events = stream_in_thread(
            partial(_answer_events, result), None if llm is None else llm.submit
        )
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip
    assert isinstance(result, Answer)
    return result.to_dict()


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _answer_events(stream: AnswerStream) -> Iterator[str]:
    """`token` events as the LLM writes, then `answer` with the whole answer and citations; a
    failure mid-answer is an `error` event (the status line was sent already)."""
    try:
        for piece in stream:
            yield sse("token", {"text": piece})
    except EmbedstackError as exc:
        yield sse("error", {"error": {"message": str(exc), "code": error_code(exc)}})
        return
    finally:
        stream.close()  # ends the generation at once when the client has gone
    if stream.answer is not None:
        yield sse("answer", stream.answer.to_dict())
