"""Count and cut text in the embedding model's own tokens (so no chunk gets truncated)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from embedstack.models import DEFAULT_MODEL, EmbeddingModel, find_spec
from embedstack.models.base import as_tokenized

# Room for tokens the model adds itself: [CLS]/[SEP], or an E5-style "passage: " prefix.
SPECIAL_TOKENS_ALLOWANCE = 2
PREFIX_ALLOWANCE = 4


class TokenCounter:
    """The model's tokenizer without truncation or special tokens."""

    def __init__(self, tokenizer_file: Path, exact: bool = True) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.exact = exact  # False when borrowed from another model (an estimate)

    @classmethod
    def for_model(cls, model: EmbeddingModel) -> TokenCounter:
        """The model's own tokenizer.json, or the default model's as an estimate."""
        tokenized = as_tokenized(model)
        if tokenized is not None and tokenized.tokenizer_file.is_file():
            return cls(tokenized.tokenizer_file)
        return cls(find_spec(DEFAULT_MODEL).locate() / "tokenizer.json", exact=False)

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def windows(self, text: str, size: int, overlap: int) -> list[tuple[int, int]]:
        """Character spans of consecutive `size`-token windows, `overlap` tokens shared."""
        offsets = self._tokenizer.encode(text, add_special_tokens=False).offsets
        if not offsets:
            return []
        step = max(1, size - overlap)
        spans = []
        for first in range(0, len(offsets), step):
            last = min(first + size, len(offsets)) - 1
            spans.append((offsets[first][0], offsets[last][1]))
            if last == len(offsets) - 1:
                break
        return spans


def token_budget(model: EmbeddingModel, counter: TokenCounter) -> int:
    """The most tokens of text one chunk may have for this model."""
    allowance = SPECIAL_TOKENS_ALLOWANCE + (PREFIX_ALLOWANCE if model.asymmetric else 0)
    if not counter.exact:
        allowance += model.max_tokens // 10  # a borrowed tokenizer: keep a 10% margin
    return max(16, model.max_tokens - allowance)
