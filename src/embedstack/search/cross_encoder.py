"""Rerank with a sentence-transformers CrossEncoder folder (any *ForSequenceClassification).

Run with transformers + PyTorch directly (both are already dependencies), so a CrossEncoder
needs no sentence-transformers install; scores match `CrossEncoder.predict`. The folder is
read with `local_files_only=True`, so nothing reaches for the hub (and the environment is left
alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedstack.errors import ModelNotFoundError


class CrossEncoderReranker:
    """Scores (query, text) pairs jointly; sigmoid of the logit (or P(relevant) for 2 labels)."""

    def __init__(self, folder: Path, batch_size: int = 16, max_length: int = 512) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(f"{folder} is not a model folder (no config.json)")
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            self._model = AutoModelForSequenceClassification.from_pretrained(
                folder, local_files_only=True
            ).eval()
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"cannot load a cross-encoder from {folder}: {exc}") from exc
        self._torch = torch
        self.name = f"cross-encoder:{folder.name}"
        self.batch_size = batch_size
        self.max_length = min(max_length, self._tokenizer.model_max_length)

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        scores = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                [query] * len(texts[start : start + self.batch_size]),
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with self._torch.inference_mode():
                logits = self._model(**batch).logits
            if logits.shape[1] == 1:
                scores.append(self._torch.sigmoid(logits[:, 0]).numpy())
            else:
                scores.append(self._torch.softmax(logits, dim=1)[:, 1].numpy())
        return np.concatenate(scores) if scores else np.empty(0, dtype=np.float32)
