"""The keyword side of a collection: BM25 over an inverted index in the collection's SQLite.

Kept in SQLite, in the same transactions as the vectors, so keyword hits are never stale or
missing after a write (LanceDB's keyword index misses new rows; Chroma keeps it cloud-only).
Scored here rather than by FTS5's bm25(), which fixes k1=1.2 and b=0.75 and lets common terms
score negative; this is Lucene's BM25, as in Pyserini's reference runs (k1=0.9, b=0.4).

A chunk's keyword score mixes its own BM25 with the BM25 of its whole document (the file it was
cut from, or its CSV/JSONL row), as passage retrieval has done since Callan (SIGIR 1994). A
chunk deep inside a filing rarely names the company the filing is about; its document does, many
times. Chunks added without a `source` are their own document, so their ranking is plain BM25.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embedstack.errors import InvalidInputError
from embedstack.store.analyzer import Analyzer
from embedstack.store.keyword_memory import KeywordMemory, score

INDEX_VERSION = 2  # bump when the tables or what is indexed change; old indexes are rebuilt
TABLES = ("postings", "keyword_chunks", "keyword_documents", "document_postings")
SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    term TEXT NOT NULL, vid INTEGER NOT NULL, tf INTEGER NOT NULL, length INTEGER NOT NULL,
    document INTEGER,  -- copied from keyword_chunks: scoring then needs no join per hit
    PRIMARY KEY (term, vid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_by_vid ON postings (vid);
CREATE TABLE IF NOT EXISTS keyword_chunks (
    vid INTEGER PRIMARY KEY, length INTEGER NOT NULL, document INTEGER
);
CREATE TABLE IF NOT EXISTS keyword_documents (
    document INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
    length INTEGER NOT NULL, chunks INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS document_postings (
    term TEXT NOT NULL, document INTEGER NOT NULL, tf INTEGER NOT NULL,
    PRIMARY KEY (term, document)
) WITHOUT ROWID;
"""
STATS = ("keyword_chunks", "keyword_terms", "keyword_documents", "keyword_document_terms")
# Metadata fields indexed with the text: they name what the chunk is about.
INDEXED_FIELDS = ("title", "heading", "file_name")
MAX_QUERY_TERMS = 1024
# Two phases, as search engines rank: the document mix re-scores only the MIX_DEPTH best chunks
# by their own BM25 (scoring every hit's document doubled keyword latency at 100k chunks).
MIX_DEPTH = 200

# Lucene's BM25 term weight; `w.value` is the query term's idf x its count in the query.
_BM25 = "w.value * {tf} * (:k1 + 1) / ({tf} + :k1 * (1 - :b + :b * {length} / {average}))"
_CHUNK_BM25 = _BM25.format(tf="p.tf", length="p.length", average=":chunk_avg")
_DOCUMENT_BM25 = _BM25.format(tf="d.tf", length="kd.length", average=":document_avg")
_CHUNK_SCORES = (
    f"SELECT p.vid, p.document, SUM({_CHUNK_BM25}) AS score "
    "FROM json_each(:chunk_weights) AS w JOIN postings AS p ON p.term = w.key "
    "{restrict} GROUP BY p.vid"
)
_DOCUMENT_SCORES = (
    f"SELECT d.document, SUM({_DOCUMENT_BM25}) AS score "
    "FROM json_each(:document_weights) AS w JOIN document_postings AS d ON d.term = w.key "
    "JOIN keyword_documents AS kd ON kd.document = d.document "
    "WHERE d.document IN (SELECT document FROM chunk) GROUP BY d.document"
)
# A chunk with no document (added without a `source`) counts as its own document.
_MIXED_SCORES = (
    f"WITH chunk AS MATERIALIZED ({_CHUNK_SCORES} ORDER BY score DESC, p.vid LIMIT :depth), "
    f"document AS MATERIALIZED ({_DOCUMENT_SCORES}) "
    "SELECT c.vid, (c.score + :mix * COALESCE(d.score, c.score)) / (1 + :mix) AS total "
    "FROM chunk AS c LEFT JOIN document AS d ON d.document = c.document "
    "ORDER BY total DESC, c.vid LIMIT :k"
)
_PLAIN_SCORES = f"{_CHUNK_SCORES} ORDER BY score DESC, p.vid LIMIT :k"


def keyword_text(text: str, metadata: Mapping[str, Any]) -> str:
    fields = [str(metadata[f]) for f in INDEXED_FIELDS if isinstance(metadata.get(f), str)]
    return "\n".join([*fields, text])


def document_key(metadata: Mapping[str, Any]) -> str | None:
    """The document a chunk was cut from: its file, or its row of a CSV/JSONL file."""
    source = metadata.get("source")
    if not isinstance(source, str):
        return None
    row = metadata.get("row")
    return source if row is None else f"{source}#row{row}"


class KeywordIndex:
    """Postings per chunk and per document plus corpus statistics.

    Holds no connection: each call gets the one it must use (the store's writer inside a
    write transaction, or the calling thread's reader), so one index serves many threads.
    """

    def __init__(
        self,
        analyzer: Analyzer,
        k1: float,
        b: float,
        document_weight: float = 2.0,
    ) -> None:
        if document_weight < 0:
            raise InvalidInputError(
                f"bm25_document_weight must be 0 or more, not {document_weight}"
            )
        self.analyzer = analyzer
        self.k1 = k1
        self.b = b
        self.document_weight = document_weight
        self.signature = f"{INDEX_VERSION}:{analyzer.signature}"
        # The postings mirrored in memory (numpy), used while they are the last commit's.
        self.memory = KeywordMemory()

    def create(self, db: sqlite3.Connection, fresh: bool = False) -> None:
        """Create the tables (dropping old ones first when `fresh`), inside the caller's
        transaction if there is one."""
        if fresh:
            for table in (*TABLES, "keyword_docs"):  # keyword_docs: the version 1 name
                db.execute(f"DROP TABLE IF EXISTS {table}")
            db.execute("DELETE FROM meta WHERE key LIKE 'keyword_%'")
        for statement in SCHEMA.split(";"):  # not executescript(), which would COMMIT first
            if statement.strip():
                db.execute(statement)
        db.executemany("INSERT OR IGNORE INTO meta VALUES (?, '0')", [(s,) for s in STATS])

    def add(
        self,
        db: sqlite3.Connection,
        vids: Sequence[int],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Index new rows; call inside the write transaction that inserts them."""
        chunks: list[tuple[int, int, int | None]] = []
        postings: list[tuple[str, int, int, int, int | None]] = []
        documents: dict[int, tuple[Counter, list[int]]] = {}  # id -> (term counts, [len, n])
        ids: dict[str, int] = {}
        new_documents = 0
        for vid, text, meta in zip(vids, texts, metadatas, strict=True):
            terms = Counter(self.analyzer.terms(keyword_text(text, meta)))
            length = sum(terms.values())
            document = None
            key = document_key(meta)
            if key is not None:
                if key not in ids:
                    ids[key], created = self._document_id(db, key)
                    new_documents += created
                document = ids[key]
                counts, sizes = documents.setdefault(document, (Counter(), [0, 0]))
                counts.update(terms)
                sizes[0] += length
                sizes[1] += 1
            chunks.append((vid, length, document))
            postings.extend((t, vid, tf, length, document) for t, tf in terms.items())
        db.executemany("INSERT INTO keyword_chunks VALUES (?, ?, ?)", chunks)
        db.executemany("INSERT INTO postings VALUES (?, ?, ?, ?, ?)", postings)
        db.executemany(
            "INSERT INTO document_postings VALUES (?, ?, ?) "
            "ON CONFLICT (term, document) DO UPDATE SET tf = tf + excluded.tf",
            ((t, d, tf) for d, (counts, _) in documents.items() for t, tf in counts.items()),
        )
        db.executemany(
            "UPDATE keyword_documents SET length = length + ?, chunks = chunks + ? "
            "WHERE document = ?",
            ((length, n, d) for d, (_, (length, n)) in documents.items()),
        )
        self._bump(
            db,
            len(chunks),
            sum(length for _, length, _ in chunks),
            new_documents,
            sum(length for _, (length, _) in documents.values()),
        )

    @staticmethod
    def _document_id(db: sqlite3.Connection, key: str) -> tuple[int, bool]:
        """(id of the document with this key, whether it was created now)."""
        row = db.execute("SELECT document FROM keyword_documents WHERE key = ?", (key,)).fetchone()
        if row:
            return row[0], False
        cursor = db.execute(
            "INSERT INTO keyword_documents (key, length, chunks) VALUES (?, 0, 0)", (key,)
        )
        return int(cursor.lastrowid or 0), True

    def remove(self, db: sqlite3.Connection, vids: Sequence[int]) -> None:
        """Drop rows from the index; call inside the write transaction that deletes them."""
        if not len(vids):
            return
        in_list = "IN (SELECT value FROM json_each(?))"
        encoded = json.dumps([int(v) for v in vids])
        count, length = db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(length), 0) FROM keyword_chunks WHERE vid {in_list}",
            (encoded,),
        ).fetchone()
        document_terms = db.execute(
            "SELECT document, term, SUM(tf) FROM postings "
            f"WHERE vid {in_list} AND document IS NOT NULL GROUP BY document, term",
            (encoded,),
        ).fetchall()
        sizes = db.execute(
            "SELECT document, SUM(length), COUNT(*) FROM keyword_chunks "
            f"WHERE vid {in_list} AND document IS NOT NULL GROUP BY document",
            (encoded,),
        ).fetchall()
        db.executemany(
            "UPDATE document_postings SET tf = tf - ? WHERE term = ? AND document = ?",
            ((tf, term, document) for document, term, tf in document_terms),
        )
        db.executemany(
            "DELETE FROM document_postings WHERE term = ? AND document = ? AND tf <= 0",
            ((term, document) for document, term, _ in document_terms),
        )
        db.executemany(
            "UPDATE keyword_documents SET length = length - ?, chunks = chunks - ? "
            "WHERE document = ?",
            ((size, n, document) for document, size, n in sizes),
        )
        emptied = db.executemany(
            "DELETE FROM keyword_documents WHERE document = ? AND chunks <= 0",
            ((document,) for document, _, _ in sizes),
        ).rowcount
        db.execute(f"DELETE FROM postings WHERE vid {in_list}", (encoded,))
        db.execute(f"DELETE FROM keyword_chunks WHERE vid {in_list}", (encoded,))
        self._bump(db, -count, -length, -emptied, -sum(size for _, size, _ in sizes))

    @staticmethod
    def _bump(
        db: sqlite3.Connection, chunks: int, terms: int, documents: int, document_terms: int
    ) -> None:
        db.executemany(
            "UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = ?",
            zip((chunks, terms, documents, document_terms), STATS, strict=True),
        )

    def search(
        self,
        db: sqlite3.Connection,
        query: str,
        k: int,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k (vid, BM25 score) for a query text; [] when it has no searchable terms.

        Scored over the postings mirrored in memory when they are the last commit's
        (`keyword_memory.py`: ~10x faster at 100k chunks), else by one aggregate query inside
        SQLite (three times faster than fetching the postings per query, because no row ever
        becomes a Python object). Both give the same scores.
        """
        query_terms = Counter(self.analyzer.terms(query))
        if not query_terms:
            return []
        wanted = [t for t, _ in query_terms.most_common(MAX_QUERY_TERMS)]
        mirror = self.memory.current(db, self.signature)
        if mirror is not None:
            return score(
                mirror, query_terms, wanted, k, self.k1, self.b, self.document_weight, MIX_DEPTH,
                allowed,
            )  # fmt: skip
        return self._sql_search(db, query_terms, wanted, k, allowed)

    def _sql_search(
        self,
        db: sqlite3.Connection,
        query_terms: Counter,
        wanted: list[str],
        k: int,
        allowed: np.ndarray | None,
    ) -> list[tuple[int, float]]:
        terms = json.dumps(wanted)
        chunks, chunk_terms, documents, document_terms = self._stats(db)
        chunk_weights = _weights(db, "postings", terms, query_terms, chunks)
        if not chunk_weights:
            return []
        params: dict[str, Any] = {
            "k1": self.k1, "b": self.b, "k": k,
            "chunk_weights": json.dumps(chunk_weights), "chunk_avg": chunk_terms / chunks,
        }  # fmt: skip
        restrict = ""
        if allowed is not None:
            restrict = "WHERE p.vid IN (SELECT value FROM json_each(:allowed))"
            params["allowed"] = json.dumps(allowed.tolist())
        sql = _PLAIN_SCORES
        if self.document_weight > 0 and documents:
            sql = _MIXED_SCORES
            document_weights = _weights(db, "document_postings", terms, query_terms, documents)
            params.update(
                document_weights=json.dumps(document_weights),
                document_avg=document_terms / documents,
                mix=self.document_weight,
                depth=max(k, MIX_DEPTH),
            )
        rows = db.execute(sql.format(restrict=restrict), params).fetchall()
        return [(int(row[0]), float(row[-1])) for row in rows]

    @staticmethod
    def _stats(db: sqlite3.Connection) -> tuple[int, ...]:
        """(chunks, their total terms, documents, their total terms) in the index."""
        found = dict(
            db.execute(
                "SELECT key, CAST(value AS INTEGER) FROM meta "
                "WHERE key IN (SELECT value FROM json_each(?))",
                (json.dumps(STATS),),
            ).fetchall()
        )
        chunks, chunk_terms, documents, document_terms = (found.get(s, 0) for s in STATS)
        return max(chunks, 1), chunk_terms, documents, document_terms

    def rebuild(self, db: sqlite3.Connection, rows: Sequence[tuple[int, str, str]]) -> None:
        """Index existing (vid, text, metadata JSON) rows: collections made before this index."""
        self.add(db, [r[0] for r in rows], [r[1] for r in rows], [json.loads(r[2]) for r in rows])


def _weights(
    db: sqlite3.Connection, table: str, terms: str, query_terms: Counter, count: int
) -> dict[str, float]:
    """idf x query frequency of the query terms found in `table` (postings per chunk or doc)."""
    df = db.execute(
        f"SELECT term, COUNT(*) FROM {table} "
        "WHERE term IN (SELECT value FROM json_each(?)) GROUP BY term",
        (terms,),
    ).fetchall()
    return {term: _idf(count, n) * query_terms[term] for term, n in df}


def _idf(docs: int, df: int) -> float:
    """Lucene's BM25 idf: never negative, unlike the classic Robertson form FTS5 uses."""
    return math.log1p((docs - df + 0.5) / (df + 0.5))
