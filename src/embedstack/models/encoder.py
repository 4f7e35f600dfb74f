"""Encode texts into L2-normalised float32 vectors, the way sentence-transformers does."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from embedstack.errors import InvalidInputError
from embedstack.models.base import TOKEN_EMBEDDINGS, TOKENIZER, BaseEmbeddingModel
from embedstack.models.inputs import as_text_list
from embedstack.models.pooling import l2_normalize, pool
from embedstack.models.sbert_folder import SbertConfig, side_prompts
from embedstack.models.tokenization import TextTokenizer
from embedstack.progress import progress_bar


class Runner(Protocol):
    """Runs the transformer: a padded batch in, (batch, tokens, dim) token vectors out."""

    parallelism: int  # batches it can run at once (ONNX: one per session)

    def __call__(self, batch: dict[str, np.ndarray], alone: bool = False) -> np.ndarray:
        """`alone`: the caller has nothing else to run (one search query), so the runner may
        spread this batch over every core."""
        ...


INT8_BACKEND = "onnx-int8"
# Padded tokens per batch on OpenVINO's static int8: short texts go together (1.6x the
# sentences of one-per-run int8), a passage goes alone (batches of passages were slower).
STATIC_INT8_BATCH_TOKENS = {"openvino-int8": 256}
# On static int8 a text's vector depends on the width its batch is padded to, and on nothing
# else: at one width, alone and batched are bit-identical; at another, cosine 0.9998 (MiniLM,
# Zen 4). So each text is padded to a width of its own length's (`padded_width`) and batched
# only with texts of that width; the steps keep padding under 1/8 past 32 tokens.
MIN_WIDTH_STEP = 4


class Encoder(BaseEmbeddingModel):
    """A loaded transformer model: `encode(texts) -> (n, dim)` array, rows of unit length."""

    capabilities = frozenset({TOKEN_EMBEDDINGS, TOKENIZER})

    def __init__(
        self, name: str, config: SbertConfig, runner: Runner, dim: int, backend: str
    ) -> None:
        self.name = name
        self.backend = backend
        self.dim = dim
        self.max_tokens = config.max_seq_length
        self._config = config
        self._tokenizer = TextTokenizer(config.tokenizer_file, config.max_seq_length)
        self._runner = runner
        self._query_prompt, self._document_prompt = side_prompts(config.prompts)
        self._default_prompt = config.prompts.get(config.default_prompt or "", "")
        # E5 and the like read "query: " and "passage: " before the text: the two sides differ
        self.asymmetric = self._query_prompt != self._document_prompt
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @property
    def tokenizer_file(self) -> Path:
        return self._config.tokenizer_file

    def token_embeddings(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(texts, tokens, dim) unit-length token vectors and their (texts, tokens) mask.

        For late interaction (MaxSim) reranking; truncated at `max_tokens` like `encode`.
        """
        items, _ = as_text_list(list(texts))
        batch = TextTokenizer.pad(self._tokenizer.encode(items))
        vectors = self._runner(batch)
        norms = np.linalg.norm(vectors, axis=2, keepdims=True)
        return vectors / np.clip(norms, 1e-12, None), batch["attention_mask"].astype(bool)

    def token_vectors(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """The transformer's raw (batch, tokens, dim) output for a padded batch (distillation)."""
        return self._runner(batch)

    def __repr__(self) -> str:
        return (
            f"Encoder(name={self.name!r}, backend={self.backend!r}, dim={self.dim}, "
            f"max_tokens={self.max_tokens})"
        )

    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Embed texts; a single string gives a 1-D vector, a list a 2-D array.

        Texts longer than `max_tokens` word pieces are truncated. Batches are formed from texts
        of similar length so little compute goes into padding; output order matches input order.
        A model with a default prompt (E5: "query: ") reads it before each text.
        """
        return self._encode(texts, self._default_prompt, batch_size, show_progress_bar)

    def encode_query(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._encode(texts, self._query_prompt, batch_size, show_progress_bar)

    def encode_document(
        self, texts: str | Sequence[str], batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._encode(texts, self._document_prompt, batch_size, show_progress_bar)

    def _encode(
        self, texts: str | Sequence[str], prompt: str, batch_size: int, show_progress_bar: bool
    ) -> np.ndarray:
        items, single = as_text_list(texts)
        if prompt:
            items = [prompt + text for text in items]
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if self.backend == INT8_BACKEND:
            # Dynamic int8 quantisation scales activations per tensor, that is per batch: a
            # text's vector would depend on what it is batched with (cosine down to 0.985
            # between a text alone and in a batch of 32). One text per run makes every vector
            # the same wherever it is computed (API, server under load, cache), and on two
            # one-thread sessions it is no slower: 531 short texts/s at 1 against 409 at 32,
            # 96 against 61 for 256-token passages (docs/benchmarks.md).
            batch_size = 1
        else:
            # Fewer texts than would fill a batch per session: split them so every session
            # works (32 texts on two sessions: two batches of 16 at once, not one of 32).
            batch_size = min(batch_size, -(-len(items) // self._runner.parallelism) or 1)
        encodings = self._tokenizer.encode(items)
        order = sorted(range(len(items)), key=lambda i: -len(encodings[i].ids))
        widths = [len(encodings[i].ids) for i in order]
        budget = STATIC_INT8_BATCH_TOKENS.get(self.backend)
        if budget is not None:
            widths = [padded_width(width, self.max_tokens) for width in widths]
        with progress_bar(
            len(items), f"Encoding ({self.name})", enabled=show_progress_bar, unit="texts"
        ) as advance:
            spans = list(_spans(widths, batch_size, budget))
            slices = [order[a:b] for a, b in spans]
            batches = [
                TextTokenizer.pad([encodings[i] for i in rows], widths[a])
                for rows, (a, _) in zip(slices, spans, strict=True)
            ]
            for rows, batch, tokens in zip(slices, batches, self._run(batches), strict=True):
                pooled = pool(tokens, batch["attention_mask"], self._config.pooling)
                out[rows] = l2_normalize(pooled)
                advance(len(rows))
        return out[0] if single else out

    def _run(self, batches: list[dict[str, np.ndarray]]) -> Iterator[np.ndarray]:
        """Token vectors per batch, in order; several at once when the runner has sessions."""
        if len(batches) == 1:
            yield self._runner(batches[0], alone=True)
            return
        if self._runner.parallelism <= 1:
            yield from map(self._runner, batches)
            return
        yield from self._workers().map(self._runner, batches)

    def _workers(self) -> ThreadPoolExecutor:
        """One pool per encoder, kept: starting threads on every call cost a server ~5% of
        its short-text throughput (a call per request batch)."""
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        self._runner.parallelism, thread_name_prefix=f"encode-{self.name}"
                    )
        return self._pool


def padded_width(tokens: int, max_tokens: int) -> int:
    """The width a text of `tokens` word pieces is padded to on static int8: the next multiple
    of a step that grows with the length (4 up to 63 tokens, 8 to 127, 16 to 255, ...)."""
    step = max(MIN_WIDTH_STEP, 1 << max(0, tokens.bit_length() - 4))
    return min(max_tokens, -(-tokens // step) * step)


def _spans(widths: list[int], batch_size: int, budget: int | None) -> Iterator[tuple[int, int]]:
    """(start, end) of each batch over texts sorted widest first: `batch_size` texts, or with
    a token `budget` as many of one width as fit in it (see `padded_width`)."""
    start = 0
    while start < len(widths):
        if budget is None:
            end = min(len(widths), start + batch_size)
        else:
            fit = min(batch_size, max(1, budget // max(1, widths[start])))
            end = start + 1
            while end < min(len(widths), start + fit) and widths[end] == widths[start]:
                end += 1
        yield start, end
        start = end
