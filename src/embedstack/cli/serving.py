"""`embedstack serve` (the HTTP API and web page) and `serve-llm`, its older name for serving
only the chat model. The server package (FastAPI, uvicorn) is imported inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedstack.cli.common import BackendOpt, err, user_errors
from embedstack.models import DEFAULT_MODEL

HostOpt = Annotated[
    str, typer.Option(help="Address to listen on (other than loopback: needs a key).")
]
KeyOpt = Annotated[
    str | None,
    typer.Option(envvar="EMBEDSTACK_API_KEY", show_envvar=True,
                 help="Clients must send 'Authorization: Bearer KEY'."),
]  # fmt: skip


@user_errors
def serve(
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    collections: Annotated[
        Path, typer.Option(help="Folder of collections, one per sub-folder (created if missing).")
    ] = Path("collections"),
    model: Annotated[
        str, typer.Option(help="Model for /v1/embeddings when a request names none.")
    ] = DEFAULT_MODEL,
    backend: BackendOpt = None,
    llm: Annotated[
        str, typer.Option(help="smollm2 (local) or openai:MODEL with --llm-base-url.")
    ] = "smollm2",
    llm_base_url: Annotated[
        str | None, typer.Option(help="The LLM's OpenAI-compatible URL.")
    ] = None,
    api_key: KeyOpt = None,
    max_batch_tokens: Annotated[
        int, typer.Option(help="Tokens embedded together in one model call, at most.")
    ] = 16384,
) -> None:
    """Serve the HTTP API (OpenAI-compatible /v1/embeddings, collections, search, ask) and the
    web page at /."""
    from embedstack.server.config import ServerConfig
    from embedstack.server.run import serve as run

    config = ServerConfig(
        collections=collections, model=model, backend=backend, llm=llm,
        llm_base_url=llm_base_url, api_key=api_key, max_batch_tokens=max_batch_tokens,
    )  # fmt: skip
    err.print(f"Serving {collections}/ at http://{host}:{port}/ (API docs at /docs)")
    run(config, host, port)


@user_errors
def serve_llm(
    llm: Annotated[str, typer.Option(help="Local model to serve.")] = "smollm2",
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    api_key: KeyOpt = None,
) -> None:
    """The same server as `serve`, on port 8080: its /v1/chat/completions runs the local LLM."""
    from embedstack.server.config import ServerConfig
    from embedstack.server.run import serve as run

    err.print(f"Serving {llm} at http://{host}:{port}/v1 (OpenAI-compatible chat)")
    run(ServerConfig(llm=llm, api_key=api_key), host, port)
