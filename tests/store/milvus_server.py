"""One Milvus standalone server (the `milvus` 2.3.5 package) for the whole test session.

Milvus 2.3 binds its gRPC and metrics ports on every interface (`*:19530`, `*:9091`, …; its
`*.ip` settings only choose the address it advertises), so the server runs in a network
namespace of its own (`unshare --net`, which holds only a loopback device; the tests run as
root or with user namespaces). One bridge process inside the namespace owns it and forwards a
Unix socket to the proxy's port; one outside listens on 127.0.0.1 only and forwards to that
socket (`socket_bridge.py`). Nothing the server opens is reachable from outside the machine,
and `listening_addresses` lets a test check with `ss` that the host sees only the bridge on
127.0.0.1.

Started on first use and stopped at exit (or by `stop`); `kill_server`/`restart_server` stop and
start the server process alone, with the same data, for the fault tests. A subprocess of the
tests reuses the parent's server through `EMBEDSTACK_TEST_MILVUS_URI`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ENV = "EMBEDSTACK_TEST_MILVUS_URI"
START_TIMEOUT_S = 180
BRIDGE = Path(__file__).with_name("socket_bridge.py")

_lock = threading.Lock()
_state: dict[str, Any] = {}
start_seconds: float | None = None


def _why_not() -> str | None:
    for module, extra in (("pymilvus", "the `milvus` extra"), ("milvus", "the `milvus` package")):
        try:
            __import__(module)
        except ImportError:
            return f"Milvus standalone tests need {extra} ({module} is not installed)"
    for tool in ("unshare", "nsenter", "ip", "ss"):
        if shutil.which(tool) is None:
            return f"Milvus standalone tests need `{tool}` (util-linux / iproute2)"
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        return "Milvus standalone tests need network namespaces (`unshare --net` failed)"
    return None


def _spawn_server() -> subprocess.Popen:
    data = _state["data"]
    env = dict(os.environ)
    env.update(
        DEPLOY_MODE="STANDALONE",
        METRICS_PORT="9091",
        MILVUS_RUN_DIR=str(Path(data) / "run"),
        LD_LIBRARY_PATH=f"{data}/bin:{os.environ.get('LD_LIBRARY_PATH', '')}",
    )
    log = open(Path(data) / "logs" / "milvus-stdout.log", "ab")  # noqa: SIM115
    try:
        return subprocess.Popen(
            ["nsenter", f"--net=/proc/{_state['inner'].pid}/ns/net",
             f"{data}/bin/milvus", "run", "standalone"],
            cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    finally:
        log.close()


def _wait_ready(uri: str) -> None:
    from pymilvus import MilvusClient

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if _state["server"].poll() is not None:
            raise RuntimeError(f"milvus exited with {_state['server'].returncode}")
        try:
            client = MilvusClient(uri=uri.replace("milvus://", "http://"), timeout=3)
            client.list_collections(timeout=3)
            client.close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _start() -> str:
    from milvus import MilvusServerConfig, _initialize_data_files

    data = tempfile.mkdtemp(prefix="embedstack-milvus-")
    _state["data"] = data
    config = MilvusServerConfig(data_dir=data)
    # Loading a new collection waits for the query coordinator's checks: every 100 ms, not 1 s.
    config.set("queryCoord.checkInterval", 100)
    config.set("queryCoord.distPullInterval", 100)
    config.resolve()  # writes configs/milvus.yaml with the data folders under `data`
    proxy_port = int(config.get("proxy_port"))
    _initialize_data_files(data)
    sock = str(Path(data) / "proxy.sock")
    _state["inner"] = subprocess.Popen(
        ["unshare", "--net", "sh", "-c",
         f'ip link set lo up && exec "{sys.executable}" "{BRIDGE}" unix-to-tcp "{sock}" '
         f"127.0.0.1:{proxy_port}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert _state["inner"].stdout is not None
    _state["inner"].stdout.readline()  # the socket is listening
    _state["outer"] = subprocess.Popen(
        [sys.executable, str(BRIDGE), "tcp-to-unix", "127.0.0.1:0", sock],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert _state["outer"].stdout is not None
    port = int(_state["outer"].stdout.readline())
    uri = f"milvus://127.0.0.1:{port}"
    _state["server"] = _spawn_server()
    _wait_ready(uri)
    return uri


def server_uri() -> str:
    """`milvus://127.0.0.1:PORT` of the session's server (started here when needed)."""
    global start_seconds
    if os.environ.get(ENV):
        return os.environ[ENV]
    why = _why_not()
    if why:
        pytest.skip(why)
    with _lock:
        if not _state:
            atexit.register(stop)
            began = time.perf_counter()
            try:
                uri = _start()
            except Exception as exc:  # pragma: no cover - depends on the machine
                stop()
                pytest.skip(f"the Milvus standalone server did not start: {exc}")
            start_seconds = time.perf_counter() - began
            os.environ[ENV] = uri
    return os.environ[ENV]


def kill_server() -> None:
    """SIGKILL the server process (a crash, or a machine gone away); the bridges stay."""
    server = _state["server"]
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)


def restart_server() -> None:
    """Start the server again on the same data and wait until it answers."""
    _state["server"] = _spawn_server()
    _wait_ready(os.environ[ENV])


def server_pids() -> list[int]:
    return [p.pid for key in ("server", "inner", "outer") if (p := _state.get(key)) is not None]


def stop() -> None:
    """Stop the server, then the bridges, and remove the data."""
    with _lock:
        for key in ("server", "inner", "outer"):
            process = _state.pop(key, None)
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
            if process.stdout is not None:
                process.stdout.close()
        if "data" in _state:
            shutil.rmtree(_state.pop("data"), ignore_errors=True)
        os.environ.pop(ENV, None)


def listening_addresses(pids: list[int]) -> list[str]:
    """Local addresses that the given processes listen on in this namespace (`ss -ltnp`)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [
        line.split()[3] for line in out.splitlines() if any(f"pid={pid}," in line for pid in pids)
    ]
