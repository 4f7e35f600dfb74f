"""Start a server: refuse an exposed address without a key, load the model, run uvicorn."""

from __future__ import annotations

import uvicorn

from embedstack.server.app import create_app
from embedstack.server.config import ServerConfig, check_exposure


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    check_exposure(host, config.api_key)
    config.check()
    app = create_app(config)
    # The server's model loads (and on first use measures its runtimes, see runtime_choice)
    # before the port opens, so no request waits for it and a model that cannot load stops
    # the server at once with its reason.
    app.state.embedstack.models.get()
    uvicorn.run(app, host=host, port=port, log_level="warning")
