"""Run a Hugging Face transformer with PyTorch; the reference backend."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# Weights come from local folders only; never let a library reach for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class TorchTransformer:
    """Token vectors (last hidden state) for a padded batch."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self._torch = torch
        self._model = transformers.AutoModel.from_pretrained(str(model_dir)).eval()
        self._input_names = {"input_ids", "attention_mask", "token_type_ids"}
        if (
            getattr(self._model.config, "type_vocab_size", 0) <= 1
        ):  # models without segment embeddings
            self._input_names.discard("token_type_ids")

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        inputs = {k: torch.from_numpy(v) for k, v in batch.items() if k in self._input_names}
        with torch.inference_mode():
            return self._model(**inputs).last_hidden_state.float().numpy()
