"""What a server is started with: folders, models, limits and the API key."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from embedstack.errors import InvalidInputError
from embedstack.models import DEFAULT_MODEL

MAX_INPUTS = 2048  # per /v1/embeddings request, as OpenAI's API; also records per add


@dataclass(frozen=True)
class ServerConfig:
    collections: Path = Path("collections")
    model: str = DEFAULT_MODEL  # what /v1/embeddings uses when a request names none
    backend: str | None = None
    llm: str = "smollm2"
    llm_base_url: str | None = None
    api_key: str | None = None
    max_batch_tokens: int = 16384  # tokens embedded in one model call, as TEI's default
    max_inputs: int = MAX_INPUTS
    max_body_mb: float = 32.0  # JSON bodies
    max_upload_mb: float = 200.0  # multipart uploads, all files of one request together
    answer_tokens: int = 256

    def check(self) -> None:
        if self.max_batch_tokens < 1:
            raise InvalidInputError("max_batch_tokens must be at least 1")
        if self.max_inputs < 1:
            raise InvalidInputError("max_inputs must be at least 1")
        if self.api_key is not None and not self.api_key.strip():
            raise InvalidInputError("the API key is empty")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse to serve collections to the network without a key."""
    if not is_loopback(host) and not api_key:
        raise InvalidInputError(
            f"refusing to listen on {host} without an API key: anyone on the network could read "
            "and change your collections. Pass --api-key KEY (or set EMBEDSTACK_API_KEY), or "
            "listen on 127.0.0.1."
        )
