"""Plain records passed between layers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from embedstack.html_tables import HIT_COLUMNS, hit_row, html_table


@dataclass(frozen=True)
class Chunk:
    """One stored unit of text: what `get` returns and what a search hit points to."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A search result; `score` is cosine similarity for dense search."""

    chunk: Chunk
    score: float
    scores_by_stage: dict[str, float] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.chunk.id

    @property
    def text(self) -> str:
        return self.chunk.text

    @property
    def metadata(self) -> dict[str, Any]:
        return self.chunk.metadata

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "text": self.text, "metadata": self.metadata}

    def _repr_html_(self) -> str:
        """One row in a notebook; for a list of hits use `embedstack.html_tables.hits_table`."""
        return html_table([hit_row(self)], HIT_COLUMNS)


@dataclass(frozen=True)
class SourceRecord:
    """A manifest entry: one ingested file, the content it was read from, its chunk ids."""

    path: str
    content_hash: str
    recipe: str
    format: str
    chunk_ids: tuple[str, ...]
    ingested_at: float

    @classmethod
    def from_row(cls, row: tuple) -> SourceRecord:
        path, content_hash, recipe, format, chunk_ids, ingested_at = row
        return cls(path, content_hash, recipe, format, tuple(json.loads(chunk_ids)), ingested_at)
