"""`create_app`: the FastAPI app of `embedstack serve`, from a `ServerConfig`.

Routers per resource, the shared `ServerState` injected as a dependency, one set of exception
handlers for OpenAI's error envelope, the API key checked on every route but the page and
/health, a body-size limit and metrics around everything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from embedstack.server.config import ServerConfig
from embedstack.server.deps import require_key
from embedstack.server.errors import install_handlers
from embedstack.server.limits import MB, BodyLimit
from embedstack.server.metrics import MetricsMiddleware
from embedstack.server.routes import (
    analysis,
    chat,
    collections,
    embeddings,
    ingest,
    media,
    ops,
    search,
)
from embedstack.server.state import ServerState

STATIC = resources.files("embedstack.server") / "static"


def create_app(config: ServerConfig | None = None, state: ServerState | None = None) -> FastAPI:
    state = state or ServerState(config or ServerConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="embedstack",
        summary="Embeddings, collections, search and answers over HTTP (OpenAI-compatible).",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.embedstack = state
    install_handlers(app)
    protected = [Depends(require_key)]
    for module in (embeddings, chat, collections, search, media, ingest, analysis):
        app.include_router(module.router, dependencies=protected)
    app.include_router(ops.router)  # /health is open to load balancers
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.add_middleware(
        BodyLimit,
        json_bytes=int(state.config.max_body_mb * MB),
        upload_bytes=int(state.config.max_upload_mb * MB),
    )
    static = str(STATIC)
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(f"{static}/index.html")

    return app
