"""The keyword side of a collection: BM25 over an inverted index in the collection's SQLite.

Kept in SQLite, in the same transactions as the vectors, so keyword hits are never stale or
missing after a write (LanceDB's keyword index misses new rows; Chroma keeps it cloud-only).
Scored here rather than by FTS5's bm25(), which fixes k1=1.2 and b=0.75 and lets common terms
score negative; this is Lucene's BM25, as in Pyserini's reference runs (k1=0.9, b=0.4).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embedstack.store.analyzer import Analyzer

SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    term TEXT NOT NULL, vid INTEGER NOT NULL, tf INTEGER NOT NULL, length INTEGER NOT NULL,
    PRIMARY KEY (term, vid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_by_vid ON postings (vid);
CREATE TABLE IF NOT EXISTS keyword_docs (vid INTEGER PRIMARY KEY, length INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('keyword_docs', '0'), ('keyword_terms', '0');
"""
# Metadata fields indexed with the text: they name what the chunk is about.
INDEXED_FIELDS = ("title", "heading", "file_name")
MAX_QUERY_TERMS = 1024


def keyword_text(text: str, metadata: Mapping[str, Any]) -> str:
    fields = [str(metadata[f]) for f in INDEXED_FIELDS if isinstance(metadata.get(f), str)]
    return "\n".join([*fields, text])


class KeywordIndex:
    """Postings (term, vid, tf, doc length) plus corpus statistics, on a shared connection."""

    def __init__(self, db: sqlite3.Connection, analyzer: Analyzer, k1: float, b: float) -> None:
        self._db = db
        self.analyzer = analyzer
        self.k1 = k1
        self.b = b

    def add(
        self, vids: Sequence[int], texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]]
    ) -> None:
        """Index new rows; call inside the write transaction that inserts them."""
        docs, postings = [], []
        for vid, text, meta in zip(vids, texts, metadatas, strict=True):
            terms = self.analyzer.terms(keyword_text(text, meta))
            docs.append((vid, len(terms)))
            postings.extend((t, vid, tf, len(terms)) for t, tf in Counter(terms).items())
        self._db.executemany("INSERT INTO keyword_docs VALUES (?, ?)", docs)
        self._db.executemany("INSERT INTO postings VALUES (?, ?, ?, ?)", postings)
        self._bump(len(docs), sum(length for _, length in docs))

    def remove(self, vids: Sequence[int]) -> None:
        """Drop rows from the index; call inside the write transaction that deletes them."""
        if not len(vids):
            return
        in_list = "IN (SELECT value FROM json_each(?))"
        encoded = json.dumps([int(v) for v in vids])
        count, length = self._db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(length), 0) FROM keyword_docs WHERE vid {in_list}",
            (encoded,),
        ).fetchone()
        self._db.execute(f"DELETE FROM postings WHERE vid {in_list}", (encoded,))
        self._db.execute(f"DELETE FROM keyword_docs WHERE vid {in_list}", (encoded,))
        self._bump(-count, -length)

    def _bump(self, docs: int, terms: int) -> None:
        self._db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + "
            "CASE key WHEN 'keyword_docs' THEN ? ELSE ? END "
            "WHERE key IN ('keyword_docs', 'keyword_terms')",
            (docs, terms),
        )

    def search(
        self,
        query: str,
        k: int,
        allowed: np.ndarray | None = None,
        db: sqlite3.Connection | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k (vid, BM25 score) for a query text; [] when it has no searchable terms.

        Scored by one aggregate query inside SQLite: three times faster than fetching the
        postings into numpy, because no row ever becomes a Python object.
        """
        query_terms = Counter(self.analyzer.terms(query))
        if not query_terms:
            return []
        terms = [t for t, _ in query_terms.most_common(MAX_QUERY_TERMS)]
        db = db or self._db
        df = dict(
            db.execute(
                "SELECT term, COUNT(*) FROM postings "
                "WHERE term IN (SELECT value FROM json_each(?)) GROUP BY term",
                (json.dumps(terms),),
            ).fetchall()
        )
        if not df:
            return []
        docs, total = self._stats(db)
        weights = {t: _idf(docs, n) * query_terms[t] for t, n in df.items()}
        restrict = ""
        params: list[Any] = [self.k1, self.b, total / docs, json.dumps(weights), k]
        if allowed is not None:
            restrict = "WHERE p.vid IN (SELECT value FROM json_each(?6))"
            params.append(json.dumps(allowed.tolist()))
        rows = db.execute(
            "SELECT p.vid, SUM(w.value * p.tf * (?1 + 1) / "
            "(p.tf + ?1 * (1 - ?2 + ?2 * p.length / ?3))) AS score "
            "FROM json_each(?4) AS w JOIN postings AS p ON p.term = w.key "
            f"{restrict} GROUP BY p.vid ORDER BY score DESC, p.vid LIMIT ?5",
            params,
        ).fetchall()
        return [(int(vid), float(score)) for vid, score in rows]

    @staticmethod
    def _stats(db: sqlite3.Connection) -> tuple[int, int]:
        """(documents, total terms) in the index."""
        rows = db.execute(
            "SELECT value FROM meta WHERE key IN ('keyword_docs', 'keyword_terms') ORDER BY key"
        )
        docs, total = (int(r[0]) for r in rows)
        return max(docs, 1), total

    def rebuild(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """Index existing (vid, text, metadata JSON) rows: collections made before this index."""
        self.add([r[0] for r in rows], [r[1] for r in rows], [json.loads(r[2]) for r in rows])


def _idf(docs: int, df: int) -> float:
    """Lucene's BM25 idf: never negative, unlike the classic Robertson form FTS5 uses."""
    return math.log1p((docs - df + 0.5) / (df + 0.5))
