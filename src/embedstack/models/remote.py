"""Use any OpenAI-compatible `/embeddings` endpoint (OpenAI, vLLM, Ollama, llama.cpp) as a model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import numpy as np

from embedstack.errors import EmbedstackError, ModelNotFoundError, RemoteModelError
from embedstack.models.base import BaseEmbeddingModel
from embedstack.models.inputs import as_text_list, encode_in_batches
from embedstack.models.pooling import l2_normalize
from embedstack.models.registry import LoadRequest
from embedstack.settings import get_settings


@contextmanager
def http_errors(url: str, client: httpx.Client, error: type[EmbedstackError]) -> Iterator[None]:
    """Turn httpx's timeouts and connection failures into one-line `error`s naming `url`."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise error(f"{url} timed out after {client.timeout.read}s") from exc
    except httpx.HTTPError as exc:
        raise error(f"cannot reach {url}: {exc}") from exc


def check_status(url: str, status: int, text: str, error: type[EmbedstackError]) -> None:
    if status != 200:
        raise error(f"{url} answered HTTP {status}: {text[:200]!r}")


def auth_headers(api_key: str | None) -> dict[str, str]:
    """Bearer auth from `api_key`, else EMBEDSTACK_API_KEY, else OPENAI_API_KEY (or none)."""
    key = api_key or get_settings().api_key
    return {"Authorization": f"Bearer {key}"} if key else {}


class RemoteEncoder(BaseEmbeddingModel):
    """Encoder over HTTP: same `encode` contract as local models (L2-normalised float32 rows)."""

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_tokens: int = 8192,
    ) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.backend = f"remote {self.base_url}"  # part of the embedding-cache key
        self.max_tokens = max_tokens
        self._client = httpx.Client(timeout=timeout, headers=auth_headers(api_key))
        self.dim = self._request(["dimension probe"]).shape[1]  # fails fast on a bad endpoint

    def __repr__(self) -> str:
        return f"RemoteEncoder(model={self.model!r}, base_url={self.base_url!r}, dim={self.dim})"

    def _request(self, texts: list[str]) -> np.ndarray:
        url = f"{self.base_url}/embeddings"
        with http_errors(url, self._client, RemoteModelError):
            response = self._client.post(url, json={"model": self.model, "input": texts})
        check_status(url, response.status_code, response.text, RemoteModelError)
        try:
            items = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.array([item["embedding"] for item in items], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteModelError(f"{url} did not return OpenAI-style embeddings: {exc}") from exc
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise RemoteModelError(
                f"{url} returned {len(vectors)} embeddings for {len(texts)} texts"
            )
        return l2_normalize(vectors)

    def encode(
        self, texts: str | Sequence[str], batch_size: int = 64, show_progress_bar: bool = False
    ) -> np.ndarray:
        items, single = as_text_list(texts, allow_empty=False)  # some servers reject ""
        out = encode_in_batches(
            items,
            self.dim,
            self._request_same_dim,
            batch_size,
            f"Embedding via {self.base_url}",
            show_progress_bar,
        )
        return out[0] if single else out

    def _request_same_dim(self, texts: list[str]) -> np.ndarray:
        vectors = self._request(texts)
        if vectors.shape[1] != self.dim:
            raise RemoteModelError(
                f"{self.base_url} changed dimension from {self.dim} to {vectors.shape[1]}"
            )
        return vectors


def resolve(request: LoadRequest) -> RemoteEncoder | None:
    """`base_url=` or a name "openai:MODEL": the model is served by an endpoint."""
    if request.base_url is None and not request.name.startswith("openai:"):
        return None
    if request.base_url is None:
        raise ModelNotFoundError(f"{request.name!r} is a remote model: pass base_url= as well")
    model = request.name.removeprefix("openai:")
    return RemoteEncoder(model, request.base_url, request.api_key, request.timeout)
