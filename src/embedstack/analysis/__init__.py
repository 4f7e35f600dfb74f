"""Analysis on embeddings: clusters with topic labels, classifiers, recommendations, 2-D maps.

Each estimator follows scikit-learn's contract (`__init__` stores parameters, `fit` returns
`self`, learned attributes end in `_`), so it works inside a `Pipeline` and with `clone`.
Names are loaded on first use: `import embedstack` never imports scikit-learn or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Clusterer": "clustering",
    "Topic": "topics",
    "describe_clusters": "topics",
    "class_tfidf": "topics",
    "EmbeddingClassifier": "classifier",
    "recommend": "recommendation",
    "Profile": "recommendation",
    "STRATEGIES": "recommendation",
    "near_duplicates": "duplicates",
    "Projector": "projection",
    "project": "projection",
    "write_map": "maps",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'embedstack.analysis' has no attribute {name!r}")
    module = importlib.import_module(f"embedstack.analysis.{_EXPORTS[name]}")
    return getattr(module, name)
