"""A Model2Vec static model distilled offline from a catalog transformer; no network needed.

Model2Vec's own `distill()` needs the `model2vec[distill]` extra, which pins transformers and
tokenizers to older releases than the rest of embedstack uses. The recipe itself is short, so it
is reproduced here with our own encoder (model2vec 0.10's defaults), and the result is saved and
served by the `model2vec` package's `StaticModel`:

1. every vocabulary token (minus `[unusedN]`) is embedded as `[CLS] token [SEP]`, mean-pooled;
2. PCA to `pca_dims` dimensions;
3. each row is weighted by SIF with Zipf-estimated token frequencies: sif / (sif + p(rank)).

Built once per (base model, recipe) into the user cache, under a lock, published by rename.
The caller hands in a way to load the base encoder, so this module never loads models itself
(and is only asked to when the folder is not built yet).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from filelock import FileLock

from embedstack.models.encoder import Encoder
from embedstack.models.onnx_export import cache_root
from embedstack.progress import progress_bar

RECIPE_VERSION = 1
UNUSED = re.compile(r"^\[unused\d+\]$")


def distilled_folder(
    name: str,
    base_model: str,
    load_base: Callable[[], Encoder],
    pca_dims: int = 256,
    sif: float = 1e-4,
) -> Path:
    """The Model2Vec folder for `name`, distilled from `base_model` (loaded by `load_base`,
    ideally on an fp32 backend) the first time it is asked for."""
    target = cache_root() / "static" / f"{name}-r{RECIPE_VERSION}-{pca_dims}"
    if (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "model.safetensors").is_file():
            _distill(base_model, load_base(), target, pca_dims, sif)
    return target


def _distill(base_model: str, encoder: Encoder, target: Path, pca_dims: int, sif: float) -> None:
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(encoder.tokenizer_file))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    keep = np.array([not UNUSED.match(token) for token, _ in vocab])
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    ids = np.array([[cls_id, token_id, sep_id] for _, token_id in vocab], dtype=np.int64)
    token_vectors = np.zeros((len(vocab), encoder.dim), dtype=np.float32)
    with progress_bar(
        len(ids), f"Distilling {base_model} to a static model", unit="tokens"
    ) as advance:
        for start in range(0, len(ids), 512):
            batch_ids = ids[start : start + 512]
            batch = {
                "input_ids": batch_ids,
                "attention_mask": np.ones_like(batch_ids),
                "token_type_ids": np.zeros_like(batch_ids),
            }
            token_vectors[start : start + len(batch_ids)] = encoder.token_vectors(batch).mean(
                axis=1
            )
            advance(len(batch_ids))
    kept = token_vectors[keep]
    centred = kept - kept.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:pca_dims].T
    inverse_rank = 1.0 / np.arange(2, len(kept) + 2)
    weights = sif / (sif + inverse_rank / inverse_rank.sum())
    vectors = np.zeros((len(vocab), pca_dims), dtype=np.float32)
    vectors[keep] = projected * weights[:, None]

    config = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": base_model,
        "apply_pca": pca_dims,
        "sif_coefficient": sif,
        "hidden_dim": pca_dims,
        "seq_length": 1_000_000,
        "normalize": True,
        "pooling": "mean",
    }
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".distill-"))
    try:
        model = StaticModel(
            vectors, tokenizer, config=config, normalize=True, base_model_name=base_model
        )
        model.save_pretrained(work)
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
