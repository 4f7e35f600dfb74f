"""`ClusterReport`: what clustering a collection found, ready for a table or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedstack.analysis.clustering import OUTLIER
from embedstack.analysis.topics import Topic
from embedstack.types import Chunk

EXAMPLE_CHARS = 300


@dataclass(frozen=True)
class ClusterReport:
    """Clusters of stored records: each record's cluster, and each cluster's topic."""

    method: str
    chunks: list[Chunk]
    labels: np.ndarray  # per chunk; -1: an outlier
    topics: list[Topic]  # examples: positions in `chunks`

    @property
    def outliers(self) -> int:
        return int((self.labels == OUTLIER).sum())

    def assignments(self) -> dict[str, int]:
        return {chunk.id: int(label) for chunk, label in zip(self.chunks, self.labels, strict=True)}

    def members(self, cluster: int) -> list[Chunk]:
        return [c for c, label in zip(self.chunks, self.labels, strict=True) if label == cluster]

    def examples(self, topic: Topic) -> list[Chunk]:
        return [self.chunks[i] for i in topic.examples]

    def to_dict(self, *, assignments: bool = True) -> dict[str, Any]:
        clusters = []
        for topic in self.topics:
            found = topic.to_dict()
            found["examples"] = [
                {"id": c.id, "text": c.text[:EXAMPLE_CHARS]} for c in self.examples(topic)
            ]
            clusters.append(found)
        report: dict[str, Any] = {
            "method": self.method,
            "n_clusters": len(self.topics),
            "n_items": len(self.chunks),
            "outliers": self.outliers,
            "clusters": clusters,
        }
        if assignments:
            report["assignments"] = self.assignments()
        return report
