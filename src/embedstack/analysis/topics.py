"""Topic labels for clusters: c-TF-IDF keywords, representative members, an optional name.

c-TF-IDF is BERTopic's class-based TF-IDF (Grootendorst 2022, `ClassTfidfTransformer` with its
defaults): word counts are summed per cluster, each cluster's counts are L1-normalised and
weighted by idf(w) = log(1 + A / f(w)), where A is the average number of words per cluster and
f(w) the word's count over all clusters. Here counts are summed from per-document counts
(rather than counting one joined document per cluster), so `min_df` counts documents: by
default a word must appear in 1 of every 2,000 documents (at least 2), which keeps user names
and host names, frequent in a few posts only, from naming small clusters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from embedstack.analysis.clustering import OUTLIER
from embedstack.analysis.vectors import as_unit_rows
from embedstack.errors import InvalidInputError

# A word starts with a letter and has at least two characters: numbers, dates and ids are
# what clusters of real documents share most, and they name nothing.
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W_]+\b"
NAME_CHARS = 60


@dataclass(frozen=True)
class Topic:
    """One cluster described: its keywords (best first), its most central members."""

    cluster: int
    size: int
    keywords: list[tuple[str, float]]
    examples: list[int]  # row positions of the members nearest the cluster's centre
    name: str | None = None

    @property
    def label(self) -> str:
        """The name when one was written, else the top keywords."""
        return (
            self.name
            or ", ".join(word for word, _ in self.keywords[:4])
            or f"cluster {self.cluster}"
        )

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["keywords"] = [[word, round(score, 6)] for word, score in self.keywords]
        found["label"] = self.label
        return found


def class_tfidf(
    texts: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    *,
    n_words: int = 10,
    stop_words: str | list[str] | None = "english",
    min_df: int | None = None,
) -> dict[int, list[tuple[str, float]]]:
    """The `n_words` top c-TF-IDF words of every cluster (outliers, -1, count in the idf)."""
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    labels = np.asarray(labels, dtype=np.int64)
    if len(texts) != len(labels):
        raise InvalidInputError(f"{len(texts)} texts but {len(labels)} labels")
    if not len(texts):
        raise InvalidInputError("no texts to describe")
    classes = np.unique(labels)
    vectorizer = CountVectorizer(
        stop_words=stop_words,
        token_pattern=TOKEN_PATTERN,
        min_df=min_df if min_df is not None else _default_min_df(len(texts)),
    )
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # no word survived (numbers, stop words only)
        return {int(c): [] for c in classes}
    rows = np.searchsorted(classes, labels)
    membership = csr_matrix(
        (np.ones(len(labels)), (rows, np.arange(len(labels)))), shape=(len(classes), len(labels))
    )
    per_class = np.asarray((membership @ counts).todense())  # clusters × words
    frequency = per_class.sum(axis=0)
    average_words = per_class.sum(axis=1).mean()
    idf = np.log(1.0 + average_words / np.maximum(frequency, 1e-12))
    weights = normalize(per_class, norm="l1") * idf
    words = vectorizer.get_feature_names_out()
    found: dict[int, list[tuple[str, float]]] = {}
    for row, cluster in enumerate(classes):
        scores = weights[row]
        top = np.argsort(-scores, kind="stable")[:n_words]
        found[int(cluster)] = [(str(words[i]), float(scores[i])) for i in top if scores[i] > 0]
    return found


def _default_min_df(documents: int) -> int:
    return 1 if documents < 50 else max(2, documents // 2000)


class _Chat(Protocol):
    def chat(self, messages: list[dict[str, str]], max_tokens: int) -> str: ...


Namer = Callable[[list[tuple[str, float]], list[str]], str | None]


def llm_namer(llm: _Chat, max_tokens: int = 16) -> Namer:
    """A namer that asks a chat model for a 2–5 word name from keywords and examples."""

    def name(keywords: list[tuple[str, float]], examples: list[str]) -> str | None:
        shown = "\n".join(f"- {' '.join(text.split())[:300]}" for text in examples)
        prompt = (
            f"Keywords: {', '.join(word for word, _ in keywords)}\n"
            f"Example documents:\n{shown}\n\n"
            "Give a short name (2 to 5 words) for what these documents are about. "
            "Reply with the name only."
        )
        reply = llm.chat([{"role": "user", "content": prompt}], max_tokens)
        line = next((part for part in reply.splitlines() if part.strip()), "")
        cleaned = re.sub(r"^(name|topic)\s*:\s*", "", line.strip(), flags=re.I).strip(" \"'*.`")
        return cleaned[:NAME_CHARS] or None

    return name


def describe_clusters(
    texts: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    vectors: Any = None,
    *,
    n_words: int = 10,
    n_examples: int = 3,
    namer: Namer | None = None,
) -> list[Topic]:
    """A `Topic` per cluster (outliers left out), biggest first as `Clusterer` numbers them.

    Examples are the members nearest the cluster's centre when `vectors` are given, else
    the first members. `namer` (e.g. `llm_namer(llm)`) writes each topic's name.
    """
    labels = np.asarray(labels, dtype=np.int64)
    keywords = class_tfidf(texts, labels, n_words=n_words)
    unit = as_unit_rows(vectors) if vectors is not None else None
    if unit is not None and len(unit) != len(labels):
        raise InvalidInputError(f"{len(unit)} vectors but {len(labels)} labels")
    topics = []
    for cluster in sorted(c for c in keywords if c != OUTLIER):
        members = np.flatnonzero(labels == cluster)
        if unit is not None:
            centre = unit[members].mean(axis=0)
            closeness = unit[members] @ centre
            members = members[np.argsort(-closeness, kind="stable")]
        examples = [int(i) for i in members[:n_examples]]
        name = namer(keywords[cluster], [texts[i] for i in examples]) if namer else None
        topics.append(
            Topic(cluster, int((labels == cluster).sum()), keywords[cluster], examples, name)
        )
    return topics
