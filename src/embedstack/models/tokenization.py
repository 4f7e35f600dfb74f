"""Fast tokenisation with the `tokenizers` library, truncated to the model's limit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer


class TextTokenizer:
    """Turn texts into padded id arrays; truncation matches sentence-transformers."""

    def __init__(self, tokenizer_file: Path, max_length: int) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_length)
        self.max_length = max_length

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        # sentence-transformers strips surrounding whitespace before tokenising.
        return self._tokenizer.encode_batch([text.strip() for text in texts])

    @staticmethod
    def pad(encodings: Sequence[Encoding], width: int | None = None) -> dict[str, np.ndarray]:
        """Pad a batch to `width`, by default its longest member (not to max_length: padding
        is wasted compute)."""
        width = max(len(e.ids) for e in encodings) if width is None else width
        shape = (len(encodings), width)
        batch = {
            "input_ids": np.zeros(shape, dtype=np.int64),
            "attention_mask": np.zeros(shape, dtype=np.int64),
            "token_type_ids": np.zeros(shape, dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            batch["input_ids"][row, :n] = encoding.ids
            batch["attention_mask"][row, :n] = encoding.attention_mask
            batch["token_type_ids"][row, :n] = encoding.type_ids
        return batch
