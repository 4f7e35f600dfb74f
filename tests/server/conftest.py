"""A real `embedstack serve` app under uvicorn on 127.0.0.1, shared by the server's tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from embedstack.server.app import create_app
from embedstack.server.config import ServerConfig
from embedstack.server.state import ServerState

API_KEY = "test-key-ñ-123"


@dataclass
class LiveServer:
    url: str
    root: Path  # the --collections folder
    state: ServerState

    def client(self, key: str | None = None, timeout: float = 120.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


@contextlib.contextmanager
def running(config: ServerConfig) -> Iterator[LiveServer]:
    """Serve `config` on a free loopback port in a thread until the block ends."""
    state = ServerState(config)
    server = uvicorn.Server(
        uvicorn.Config(create_app(state=state), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", config.collections, state)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[LiveServer]:
    """No API key; collections in a fresh folder. Tests make their own collections."""
    root = tmp_path_factory.mktemp("served-collections")
    with running(ServerConfig(collections=root)) as live:
        yield live


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("keyed-collections")
    with running(ServerConfig(collections=root, api_key=API_KEY)) as live:
        yield live


@pytest.fixture(scope="session")
def client(live_server) -> Iterator[httpx.Client]:
    with live_server.client() as http:
        yield http
