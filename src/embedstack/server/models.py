"""The embedding models a server has loaded, each with its tokenizer and batcher.

Requests may name any installed catalog text model (loaded on first use); a file path is never
taken from a request, so clients cannot make the server read arbitrary files. The server's own
`--model` may be a path, since whoever starts the server chose it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

from embedstack.errors import InvalidInputError, ModelNotFoundError
from embedstack.models import (
    CATALOG,
    EmbeddingModel,
    ModelSpec,
    find_spec,
    load_model,
    settled_runtime,
)
from embedstack.models.base import as_tokenized
from embedstack.server.batching import Embedded, EmbeddingBatcher
from embedstack.server.metrics import Metrics


class ServedModel:
    """One loaded model as the HTTP API uses it: count, decode and embed, batched."""

    def __init__(self, model: EmbeddingModel, max_batch_tokens: int, metrics: Metrics) -> None:
        self.model = model
        self.name = model.name
        tokenized = as_tokenized(model)
        self.tokenizer: Tokenizer | None = None
        if tokenized is not None:
            self.tokenizer = Tokenizer.from_file(str(tokenized.tokenizer_file))
            self.tokenizer.no_padding()
            self.tokenizer.enable_truncation(max_length=model.max_tokens)
        name = model.name

        def on_batch(texts: int, tokens: int) -> None:
            metrics.batch_texts.labels(name).observe(texts)
            metrics.batch_tokens.labels(name).observe(tokens)

        self.batcher = EmbeddingBatcher(
            self._encode, self.token_counts, max_batch_tokens, on_batch,
            lambda depth: metrics.queue_depth.labels(name).set(depth), name=name,
        )  # fmt: skip

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The model's token ids per text (truncated as the model reads them)."""
        if self.tokenizer is None:
            raise InvalidInputError(f"model {self.name!r} has no tokenizer")
        return [e.ids for e in self.tokenizer.encode_batch([t.strip() for t in texts])]

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text: the model's own where it has a tokenizer, else words."""
        if self.tokenizer is None:
            return [max(1, len(text.split())) for text in texts]
        return [len(ids) for ids in self.token_ids(texts)]

    def decode(self, token_arrays: Sequence[Sequence[int]]) -> list[str]:
        """Texts back from the model's token ids (what TEI accepts as input)."""
        if self.tokenizer is None:
            raise InvalidInputError(
                f"model {self.name!r} has no tokenizer: send text, not token ids"
            )
        size = self.tokenizer.get_vocab_size()
        for position, ids in enumerate(token_arrays):
            bad = next((i for i in ids if not 0 <= i < size), None)
            if bad is not None:
                raise InvalidInputError(
                    f"input {position}: token id {bad} is outside the vocabulary (0..{size - 1})"
                )
        return self.tokenizer.decode_batch([list(ids) for ids in token_arrays])

    async def embed(self, texts: list[str], tokens: list[int] | None = None) -> Embedded:
        """Vectors for `texts`, embedded together with other requests waiting at the time, and
        their token counts (counted by the batcher unless given)."""
        return await asyncio.wrap_future(self.batcher.submit(texts, tokens))

    def close(self) -> None:
        self.batcher.close()


class ModelPool:
    """Models by name, loaded once, shared by /v1/embeddings, /rerank and the collections."""

    def __init__(
        self, default: str, backend: str | None, max_batch_tokens: int, metrics: Metrics
    ) -> None:
        self.default = default
        self._backend = backend
        self._max_batch_tokens = max_batch_tokens
        self._metrics = metrics
        self._served: dict[str, ServedModel] = {}
        self._lock = threading.Lock()

    def canonical(self, name: str | None) -> str:
        """The catalog name for `name` (an alias too); an unknown name is a 404."""
        if not name or name == self.default:
            return self.default
        spec = find_spec(name)
        if spec.name == self.default:
            return self.default
        if spec.modality != "text":
            raise ModelNotFoundError(f"{spec.name!r} embeds {spec.modality}, not text")
        spec.require_installed()
        return spec.name

    def get(self, name: str | None = None) -> ServedModel:
        canonical = self.canonical(name)
        with self._lock:  # loading is slow, but two loads of one model would be slower
            served = self._served.get(canonical)
            if served is None:
                # `embedstack serve` loads its own model (measuring its runtimes on first use)
                # before the port opens (server/run.py). A model a request names takes the
                # runtime measured before, else int8: measuring mpnet's runtimes would keep
                # the request (and the lock) longer than a client waits.
                if canonical == self.default:
                    backend = self._backend
                else:
                    backend = settled_runtime(find_spec(canonical))
                model = load_model(canonical, backend)
                served = ServedModel(model, self._max_batch_tokens, self._metrics)
                self._served[canonical] = served
            return served

    def ready(self, name: str | None) -> ServedModel | None:
        """The served model when `name` (exactly as given) is loaded already, else None."""
        return self._served.get(name or self.default)

    def listed(self) -> list[ModelSpec]:
        """Installed catalog text models: what a request may name."""
        return [s for s in CATALOG.values() if s.modality == "text" and s.installed()]

    def close(self) -> None:
        with self._lock:
            for served in self._served.values():
                served.close()
            self._served.clear()
