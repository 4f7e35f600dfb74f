"""Run a Hugging Face transformer with PyTorch; the reference backend.

Weights come from local folders only: `local_files_only=True` keeps transformers off the hub
without touching the process environment (HF_HUB_OFFLINE is the user's to set).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TorchTransformer:
    """Token vectors (last hidden state) for a padded batch."""

    parallelism = 1  # one batch at a time: PyTorch already spreads a batch over the cores

    def __init__(self, model_dir: Path) -> None:
        import torch
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self._torch = torch
        self._model = transformers.AutoModel.from_pretrained(
            str(model_dir), local_files_only=True
        ).eval()
        self._input_names = {"input_ids", "attention_mask", "token_type_ids"}
        if getattr(self._model.config, "type_vocab_size", 0) <= 1:  # no segment embeddings
            self._input_names.discard("token_type_ids")

    def __call__(self, batch: dict[str, np.ndarray], alone: bool = False) -> np.ndarray:
        torch = self._torch
        inputs = {k: torch.from_numpy(v) for k, v in batch.items() if k in self._input_names}
        with torch.inference_mode():
            return self._model(**inputs).last_hidden_state.float().numpy()
