"""One Milvus standalone server (the `milvus` 2.3.5 package) for the whole test session.

Started on first use, stopped at exit. Every port it opens is bound to 127.0.0.1: the package
picks free ports by binding them on 127.0.0.1, and the server's components are told to
advertise and listen on 127.0.0.1 (`*.ip`, etcd's client and peer URLs); `listening_ports`
lets a test check with `ss` that nothing listens elsewhere. A subprocess of the tests reuses
the parent's server through `EMBEDSTACK_TEST_MILVUS_URI`.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import tempfile
import threading
import time
from typing import Any

import pytest

ENV = "EMBEDSTACK_TEST_MILVUS_URI"
COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode",
              "dataCoord", "dataNode")  # fmt: skip

_lock = threading.Lock()
_server: Any = None
_data_dir: tempfile.TemporaryDirectory | None = None
start_seconds: float | None = None


def _new_server() -> Any:
    from milvus import MilvusServer, MilvusServerConfig

    global _data_dir
    _data_dir = tempfile.TemporaryDirectory(prefix="embedstack-milvus-")
    config = MilvusServerConfig(data_dir=_data_dir.name)
    server = MilvusServer(config)
    for component in COMPONENTS:
        config.set(f"{component}.ip", "127.0.0.1")
    return server


def server_uri() -> str:
    """`milvus://127.0.0.1:PORT` of the session's server (started here when needed)."""
    global _server, start_seconds
    if os.environ.get(ENV):
        return os.environ[ENV]
    pytest.importorskip("pymilvus", reason="Milvus tests need the `milvus` extra (pymilvus)")
    pytest.importorskip("milvus", reason="the Milvus standalone tests need the `milvus` package")
    with _lock:
        if _server is None:
            server = _new_server()
            began = time.perf_counter()
            try:
                server.start()
            except Exception as exc:  # pragma: no cover - depends on the machine
                server.stop()
                pytest.skip(f"the Milvus standalone server did not start: {exc}")
            start_seconds = time.perf_counter() - began
            _server = server
            atexit.register(stop)
            os.environ[ENV] = f"milvus://127.0.0.1:{server.listen_port}"
    return os.environ[ENV]


def pid() -> int | None:
    return _server.server_proc.pid if _server is not None and _server.server_proc else None


def stop() -> None:
    """Stop the server (and remove its data)."""
    global _server
    with _lock:
        if _server is not None:
            _server.stop()
            _server = None
            os.environ.pop(ENV, None)
        if _data_dir is not None:
            _data_dir.cleanup()


def listening_addresses(process_id: int) -> list[str]:
    """Local addresses the process (and its threads) listens on, from `ss -ltnp`."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={process_id}," in line]
