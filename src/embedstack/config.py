"""`collection.toml`: what a collection folder was built with, checked on every open."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import tomli_w

from embedstack.errors import CollectionError

CONFIG_FILE = "collection.toml"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CollectionConfig:
    model: str
    dim: int
    index: str = "flat"
    store: str = "local"  # which backend holds the rows (store/factory.py)
    hnsw_m: int = 32
    ef_search: int = 64
    keyword_language: str = "english"  # Snowball stemmer, or "none"
    keyword_stopwords: str = "english"  # or "none"
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    bm25_document_weight: float = 2.0  # a chunk's whole document next to the chunk; 0 = off
    format_version: int = FORMAT_VERSION

    @classmethod
    def read(cls, folder: Path) -> CollectionConfig:
        path = folder / CONFIG_FILE
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            config = cls(**data)
        except (OSError, tomllib.TOMLDecodeError, TypeError) as exc:
            raise CollectionError(f"cannot read {path}: {exc}") from exc
        if config.format_version > FORMAT_VERSION:
            raise CollectionError(
                f"{folder} uses collection format {config.format_version}; "
                f"this embedstack reads up to {FORMAT_VERSION}: upgrade embedstack"
            )
        return config

    def write(self, folder: Path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half of one."""
        path = folder / CONFIG_FILE
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text(tomli_w.dumps(asdict(self)), encoding="utf-8")
        os.replace(tmp, path)
