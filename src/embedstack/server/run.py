"""Start a server: refuse an exposed address without a key, then run uvicorn."""

from __future__ import annotations

import uvicorn

from embedstack.server.app import create_app
from embedstack.server.config import ServerConfig, check_exposure


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    check_exposure(host, config.api_key)
    config.check()
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
