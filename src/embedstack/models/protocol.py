"""Kept for imports written before `models.base`: the model protocol lives there now."""

from embedstack.models.base import EmbeddingModel

__all__ = ["EmbeddingModel"]
