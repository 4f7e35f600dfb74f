"""Read a sentence-transformers model folder's settings without importing sentence-transformers.

We reproduce its pipeline (truncate → transformer → pool → normalise) ourselves so that the
transformer step can be swapped for a faster runtime while the results stay identical.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from embedstack.errors import ModelNotFoundError

_POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
}


@dataclass(frozen=True)
class SbertConfig:
    """What the encoder needs to know about a sentence-transformers folder."""

    transformer_dir: Path
    tokenizer_file: Path
    max_seq_length: int
    pooling: str  # "mean" | "cls" | "max"
    # sentence-transformers' prompts, e.g. E5's {"query": "query: ", "document": "passage: "},
    # and the one plain `encode` uses
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt: str | None = None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"cannot read model file {path}: {exc}") from exc


def read_sbert_folder(folder: Path) -> SbertConfig:
    """Parse modules.json and the module configs it points to."""
    folder = Path(folder)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        raise ModelNotFoundError(
            f"{folder} is not a sentence-transformers folder (no modules.json)"
        )
    modules = _read_json(modules_file)
    transformer_dir: Path | None = None
    pooling = "mean"
    for module in modules:
        kind = module.get("type", "")
        path = folder / module.get("path", "")
        # Class names, not module paths: sentence-transformers 6 moved them (models.Transformer
        # became base.modules.transformer.Transformer) and saves folders with the new paths.
        if kind.endswith(".Transformer"):
            transformer_dir = path
        elif kind.endswith(".Pooling"):
            pooling = _pooling_mode(path / "config.json")
        elif kind.endswith(".Normalize"):
            pass  # embedstack always L2-normalises
        else:
            raise ModelNotFoundError(
                f"unsupported sentence-transformers module {kind!r} in {folder}"
            )
    if transformer_dir is None:
        raise ModelNotFoundError(f"{folder} has no Transformer module in modules.json")
    tokenizer_file = transformer_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ModelNotFoundError(f"{transformer_dir} has no tokenizer.json")
    prompts, default_prompt = _prompts(folder / "config_sentence_transformers.json")
    return SbertConfig(
        transformer_dir=transformer_dir,
        tokenizer_file=tokenizer_file,
        max_seq_length=_max_seq_length(transformer_dir),
        pooling=pooling,
        prompts=prompts,
        default_prompt=default_prompt,
    )


def _prompts(config_file: Path) -> tuple[dict[str, str], str | None]:
    """The prompts sentence-transformers prepends by name (empty ones dropped), and the default."""
    if not config_file.is_file():
        return {}, None
    config = _read_json(config_file)
    raw = config.get("prompts") or {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ModelNotFoundError(f"unsupported prompts in {config_file}: {raw!r}")
    prompts = {str(name): text for name, text in raw.items() if text}
    default = config.get("default_prompt_name")
    return prompts, default if default in prompts else None


def side_prompts(prompts: Mapping[str, str]) -> tuple[str, str]:
    """(query, document) prompts from sentence-transformers' named prompts: "query", and the
    first of "document", "passage", "corpus" (the names it looks up, in its order); "" if none."""
    given = {name: text for name, text in prompts.items() if text}
    document = next((given[n] for n in ("document", "passage", "corpus") if n in given), "")
    return given.get("query", ""), document


def _pooling_mode(config_file: Path) -> str:
    """sentence-transformers 6 writes `"pooling_mode": "mean"`; earlier versions one flag each."""
    config = _read_json(config_file)
    named = config.get("pooling_mode")
    chosen = [named] if named else [m for key, m in _POOLING_MODES.items() if config.get(key)]
    if len(chosen) != 1 or chosen[0] not in _POOLING_MODES.values():
        raise ModelNotFoundError(f"unsupported pooling settings in {config_file}: {config}")
    return chosen[0]


def _max_seq_length(transformer_dir: Path) -> int:
    """sentence_bert_config.json's max_seq_length (up to version 5), else the tokenizer's
    model_max_length (where version 6 keeps it), else 512."""
    settings_file = transformer_dir / "sentence_bert_config.json"
    settings = _read_json(settings_file) if settings_file.is_file() else {}
    if "max_seq_length" in settings:
        return int(settings["max_seq_length"])
    tokenizer_config = transformer_dir / "tokenizer_config.json"
    if tokenizer_config.is_file():
        # Tokenizers without a limit say 1e30: cap at BERT's 512 positions.
        return min(512, int(_read_json(tokenizer_config).get("model_max_length", 512)))
    return 512


def read_onnx_folder(onnx_path: Path) -> SbertConfig:
    """Settings for a bare ONNX export (e.g. from optimum): tokenizer.json beside the file.

    Pooling and length come from sentence-transformers files if present; otherwise mean pooling
    and the tokenizer's own limit (at most 512), the usual sentence-embedding convention.
    """
    folder = onnx_path.parent
    if (folder / "modules.json").is_file():
        config = read_sbert_folder(folder)
        return dataclasses.replace(config, transformer_dir=folder)
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ModelNotFoundError(f"no tokenizer.json beside {onnx_path}")
    limit = 512
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file():
        limit = min(limit, int(_read_json(tokenizer_config).get("model_max_length", limit)))
    return SbertConfig(folder, tokenizer_file, limit, "mean")
