"""An OpenAI-compatible chat server for the local model: `embedstack serve-llm`.

Lets anything that speaks the OpenAI API (including `embedstack ask --llm openai:...`) use the
offline model over HTTP. FastAPI + uvicorn; one request generates at a time, since the model
has one set of weights and two CPU-bound generations would only slow each other down.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from embedstack.rag.llm import ChatModel


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    stream: bool = False
    temperature: float | None = None  # accepted; decoding is greedy


def create_app(llm: ChatModel, default_max_tokens: int = 256) -> FastAPI:
    app = FastAPI(title="embedstack LLM server")
    lock = threading.Lock()

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        entry = {"id": llm.name, "object": "model", "context_length": llm.context_window}
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions", response_model=None)
    def chat(request: ChatRequest):
        messages = [m.model_dump() for m in request.messages]
        max_tokens = request.max_tokens or default_max_tokens
        prompt_tokens = sum(llm.count_tokens(m["content"]) for m in messages)
        if prompt_tokens + max_tokens > llm.context_window:
            raise HTTPException(
                400,
                f"prompt ({prompt_tokens} tokens) + max_tokens ({max_tokens}) exceed the "
                f"context window ({llm.context_window})",
            )
        reply_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if request.stream:
            return StreamingResponse(
                _events(llm, lock, messages, max_tokens, reply_id), media_type="text/event-stream"
            )
        with lock:
            text = llm.chat(messages, max_tokens)
        return {
            "id": reply_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": llm.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],  # fmt: skip
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": llm.count_tokens(text),
            },  # fmt: skip
        }

    return app


def _events(llm: ChatModel, lock: threading.Lock, messages, max_tokens: int, reply_id: str
            ) -> Iterator[str]:  # fmt: skip
    def event(delta: dict[str, str], finish: str | None = None) -> str:
        chunk = {"id": reply_id, "object": "chat.completion.chunk", "model": llm.name,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return f"data: {json.dumps(chunk)}\n\n"

    with lock:
        yield event({"role": "assistant"})
        for piece in llm.stream(messages, max_tokens):
            yield event({"content": piece})
    yield event({}, "stop")
    yield "data: [DONE]\n\n"
