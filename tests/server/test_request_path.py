"""The per-request path stays on the event loop: no dependency costs a thread hop."""

from __future__ import annotations

import inspect

from embedstack.server import deps


def test_the_route_dependencies_run_on_the_event_loop() -> None:
    # FastAPI runs a plain `def` dependency in its thread pool: two of them (the state and the
    # API key, on every route) cost /v1/embeddings 1.16 ms a request instead of 0.27 ms.
    functions = {
        name: value
        for name, value in vars(deps).items()
        if inspect.isfunction(value) and value.__module__ == deps.__name__
    }
    assert {"get_state", "require_key"} <= set(functions)
    sync = [
        name for name, function in functions.items() if not inspect.iscoroutinefunction(function)
    ]
    assert not sync, f"dependencies that would run in the thread pool: {sync}"
