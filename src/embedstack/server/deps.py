"""Dependencies the routes declare: the server state and the API key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from embedstack.server.errors import HTTPError
from embedstack.server.state import ServerState

# Both dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in its
# thread pool. Two thread hops per request were 0.9 ms of the 1.2 ms /v1/embeddings cost a
# request (model stubbed; tests/server/test_request_path.py).


async def get_state(request: Request) -> ServerState:
    return request.app.state.embedstack


State = Annotated[ServerState, Depends(get_state)]


async def require_key(request: Request) -> None:
    """With an API key configured, `Authorization: Bearer KEY` (the OpenAI SDK's header)."""
    expected = request.app.state.embedstack.config.api_key
    if not expected:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise HTTPError(
            401, "a valid API key is needed: send 'Authorization: Bearer KEY'", "invalid_api_key"
        )
