"""`/v1/chat/completions`: the server's LLM (local, or the endpoint it was started with) in
OpenAI's chat API, so anything that speaks it (including `embedstack ask --llm openai:…`) can
use the offline model over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from embedstack.errors import ContextWindowError
from embedstack.rows import check_text
from embedstack.server.deps import State
from embedstack.server.llm import SerializedChatModel
from embedstack.server.streaming import stream_in_thread

router = APIRouter()


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    stream: bool = False
    temperature: float | None = None  # accepted; decoding is greedy


@router.post("/v1/chat/completions", summary="Chat with the server's LLM (OpenAI's API)")
async def chat(request: ChatRequest, state: State) -> Any:
    llm = await run_in_threadpool(state.llm.get)
    messages = [m.model_dump() for m in request.messages]
    for position, message in enumerate(messages):
        check_text(message["content"], f"messages.{position}.content")
    max_tokens = request.max_tokens or state.config.answer_tokens
    prompt_tokens = sum(llm.count_tokens(m["content"]) for m in messages)
    if prompt_tokens + max_tokens > llm.context_window:
        raise ContextWindowError(
            f"prompt ({prompt_tokens} tokens) + max_tokens ({max_tokens}) exceed the "
            f"context window ({llm.context_window})"
        )
    reply_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    if request.stream:
        llm.check_room()  # before the status line: the stream waits for its turn
        return StreamingResponse(
            _events(llm, messages, max_tokens, reply_id), media_type="text/event-stream"
        )
    text = await llm.run(llm.chat, messages, max_tokens)
    return {
        "id": reply_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": llm.name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": llm.count_tokens(text),
                  "total_tokens": prompt_tokens + llm.count_tokens(text)},
    }  # fmt: skip


async def _events(
    llm: SerializedChatModel, messages: list[dict[str, str]], max_tokens: int, reply_id: str
) -> AsyncIterator[str]:
    def event(delta: dict[str, str], finish: str | None = None) -> str:
        chunk = {"id": reply_id, "object": "chat.completion.chunk", "model": llm.name,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return f"data: {json.dumps(chunk)}\n\n"

    yield event({"role": "assistant"})
    # A client that stops reading (ask's auto mode, at an unsupported sentence) ends the
    # generation and frees the LLM's turn at once.
    generation = stream_in_thread(lambda: llm.stream(messages, max_tokens), llm.submit)
    async for piece in generation:
        yield event({"content": piece})
    yield event({}, "stop")
    yield "data: [DONE]\n\n"
