"""Dynamic batching: concurrent embedding requests share model calls.

Requests wait in one queue; a worker thread takes everything waiting, up to a token budget
(as TEI's `--max-batch-tokens`), and embeds it in one call, so 32 clients sending one sentence
each cost one model call of 32 texts, not 32 calls. While the model runs, new requests queue up
and form the next batch: no timer, no added latency when the server is idle. A request larger
than the budget is embedded alone (the model splits it into its own batches).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from embedstack.errors import StorageError

Embed = Callable[[list[str]], np.ndarray]


@dataclass
class _Request:
    texts: list[str]
    tokens: int
    future: Future[np.ndarray] = field(default_factory=Future)


class EmbeddingBatcher:
    def __init__(
        self,
        embed: Embed,
        max_batch_tokens: int,
        on_batch: Callable[[int, int], None] = lambda texts, tokens: None,
        on_queue: Callable[[int], None] = lambda depth: None,
        name: str = "model",
    ) -> None:
        self._embed = embed
        self._budget = max_batch_tokens
        self._on_batch = on_batch
        self._on_queue = on_queue
        self._queue: deque[_Request] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._worker.start()

    def submit(self, texts: Sequence[str], tokens: int) -> Future[np.ndarray]:
        """Queue `texts` (`tokens` in all, for the budget); the future gets their vectors."""
        request = _Request(list(texts), tokens)
        with self._ready:
            if self._closed:
                raise StorageError("the server is shutting down")
            self._queue.append(request)
            self._on_queue(len(self._queue))
            self._ready.notify()
        return request.future

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._worker.join(timeout=30)

    def _next_batch(self) -> list[_Request]:
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            batch: list[_Request] = []
            tokens = 0
            while self._queue and (not batch or tokens + self._queue[0].tokens <= self._budget):
                request = self._queue.popleft()
                if request.future.set_running_or_notify_cancel():
                    batch.append(request)
                    tokens += request.tokens
            self._on_queue(len(self._queue))
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                if self._closed:
                    return
                continue
            texts = [text for request in batch for text in request.texts]
            self._on_batch(len(texts), sum(request.tokens for request in batch))
            try:
                vectors = self._embed(texts)
            except BaseException as exc:  # the callers get the error; the worker lives on
                for request in batch:
                    request.future.set_exception(exc)
                continue
            start = 0
            for request in batch:
                request.future.set_result(vectors[start : start + len(request.texts)])
                start += len(request.texts)
