"""The PostgreSQL store: rows, vectors (pgvector), metadata and the keyword index in one database.

`Collection.open(folder, store="postgresql://user@host:5432/db")` keeps the folder for
collection.toml and the embedding cache only; everything else lives in four tables named after
the collection (`?table=NAME` in the URL, else `es_` + the folder's name, lower-cased, each run
of other characters than letters and digits made one `_`): NAME (chunks), NAME__sources (the
ingest manifest), NAME__lexemes (document frequencies for BM25) and NAME__state (dimension,
text-search configuration, row count and total length); `__` is reserved for these, so one
collection's tables and indexes never take another's name. They are created on first open,
with pgvector (`CREATE EXTENSION vector`) if the database lacks it. Other libpq parameters
pass through the URL (`?host=/run/postgresql`, `sslmode=require`,
`options=-csearch_path%3Dmyschema`); the password comes from PGPASSWORD or ~/.pgpass, never
from collection.toml.

* **Vectors**: `vector(dim)` (float32, as given), or `halfvec(dim)` with `?vectors=halfvec` in
  the URL when the tables are created (float16: 0.57x the HNSW index at 10⁵ rows, the same
  recall, scores within ~1e-3; docs/benchmarks.md), with an HNSW index on inner product
  (vectors are unit length, so this is cosine). Filtered searches use pgvector's iterative
  index scans, and when a search still comes back short of k while more rows match (a very
  selective filter), it is run again exactly (sequential scan), so k hits come back whenever
  k rows match.
* **Metadata**: `json` as given (verbatim: `jsonb` would give 1e300 back as an int), plus
  `fields` (`jsonb`), the filterable values written so that SQL compares them exactly as
  `filters.matches` does (postgres_filters.py), with a GIN index.
* **Keywords**: PostgreSQL's own text search (a `tsvector` column with a GIN index, in the
  collection's keyword language where PostgreSQL has that configuration, else 'simple'),
  ranked by Lucene's BM25 (k1, b from collection.toml) from the term frequencies in the
  tsvector and document frequencies kept in NAME__lexemes in the same transactions.
  `ts_rank_cd` has no inverse document frequency and ranks SciFact far worse.
* **Writes** are one transaction each, serialised per collection by a transaction-level
  advisory lock, so a file's chunks and its manifest entry change together, and a server that
  goes away mid-ingest leaves each file whole or absent.
* **Connections** come from a psycopg_pool pool (thread-safe; connections are checked when
  taken, so a restarted server is picked up again). Reads run in autocommit or one REPEATABLE
  READ transaction, so they see the last committed write and never wait for a writer.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import numpy as np
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from embedstack.errors import (
    CollectionError,
    EmbedstackError,
    InvalidInputError,
    ReadOnlyCollectionError,
    StorageError,
)
from embedstack.store.base import KEYWORD, MANIFEST, FileRows, Scored
from embedstack.store.call_gate import CallGate
from embedstack.store.filters import MATCH_ALL, FilterNode
from embedstack.store.postgres_filters import compile_postgres, fields_json
from embedstack.types import Chunk, SourceRecord

# The pool logs each failed connection attempt; our errors say it once, in one line.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

POOL_SIZE = 8  # connections at most per store (searches from a server's threads share them)
WAIT_S = 10.0  # how long a call waits for a connection (a server that is down) before failing
MAX_QUERY_TERMS = 1024
MAX_EF_SEARCH = 1000  # pgvector's limit for hnsw.ef_search
# Metadata fields indexed with the text, as the local store does: they name what it is about.
INDEXED_FIELDS = ("title", "heading", "file_name")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
VECTOR_TYPES = ("vector", "halfvec")  # pgvector's float32 and float16 columns
_OWN_PARAMETERS = ("table", "vectors")  # the URL's parameters that are ours, not libpq's


def table_name(url: str, folder: Path) -> str:
    """The chunks table for a collection: `?table=` in the URL, else `es_<folder name>`."""
    query = dict(parse_qsl(urlsplit(url).query))
    if "table" in query:
        name = query["table"]
        if not _TABLE_NAME.fullmatch(name) or "__" in name:
            raise InvalidInputError(
                f"table={name!r} in the store URL: use 1-48 letters, digits or single _, "
                "not starting with a digit"
            )
        return name
    stem = re.sub(r"[^a-z0-9]+", "_", Path(folder).resolve().name.lower()).strip("_")
    stem = stem or "collection"
    return f"es_{stem}"[:48]


def vector_type(url: str) -> str | None:
    """The column type `?vectors=` in the URL asks for (None: whatever the tables hold, and
    `vector` for new ones)."""
    asked = dict(parse_qsl(urlsplit(url).query)).get("vectors")
    if asked is not None and asked not in VECTOR_TYPES:
        raise InvalidInputError(
            f"vectors={asked!r} in the store URL: use {' or '.join(VECTOR_TYPES)}"
        )
    return asked


def connection_url(url: str) -> str:
    """The URL as libpq reads it: our own parameters removed, the scheme `postgresql`."""
    parts = urlsplit(url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in _OWN_PARAMETERS
    ]
    encoded = urlencode(query, quote_via=quote)  # libpq reads %20 as a space, not "+"
    return urlunsplit(("postgresql", parts.netloc, parts.path, encoded, ""))


def shown_url(url: str) -> str:
    """The URL for messages: no password, even one that slipped in."""
    parts = urlsplit(connection_url(url))
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        netloc[0] = netloc[0].split(":", 1)[0]
    return unquote(urlunsplit(parts._replace(netloc="@".join(netloc))))


def text_search_config(language: str, available: set[str]) -> str:
    """PostgreSQL's text-search configuration for a keyword language ('simple' if none)."""
    return language if language in available else "simple"


def _vector_text(vector: np.ndarray) -> str:
    """pgvector's text form; repr of each float32 (as a double) reads back exactly."""
    return "[" + ",".join(map(repr, vector.tolist())) + "]"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class PostgresStore:
    """Chunks, vectors, metadata, keyword index and manifest in PostgreSQL; see module docstring."""

    capabilities = frozenset({KEYWORD, MANIFEST})

    def __init__(
        self,
        url: str,
        folder: Path,
        dim: int,
        *,
        language: str = "english",
        hnsw_m: int = 16,
        ef_search: int = 64,
        bm25_k1: float = 0.9,
        bm25_b: float = 0.4,
    ) -> None:
        self.dim = dim
        self.table = table_name(url, folder)
        asked = vector_type(url)
        self._vectors = asked or "vector"  # for new tables; _open_tables reads existing ones
        self.where = f"PostgreSQL at {shown_url(url)} (table {self.table})"
        self._ef_search = min(max(ef_search, 1), MAX_EF_SEARCH)
        self._hnsw_m = min(max(hnsw_m, 2), 100)
        self._k1, self._b = bm25_k1, bm25_b
        self._lock_key = zlib.crc32(self.table.encode())  # the advisory lock writes take
        self._calls = CallGate(f"the collection in {self.where} is closed")
        names = {part: f"{self.table}__{part}" for part in ("sources", "lexemes", "state")}
        self._t = sql.Identifier(self.table)
        self._sources = sql.Identifier(names["sources"])
        self._lexemes = sql.Identifier(names["lexemes"])
        self._state = sql.Identifier(names["state"])
        self._conninfo = connection_url(url)
        self._pool_lock = threading.Lock()
        self._broken = False  # the server went away: probe it, then start a fresh pool
        self._pool = self._new_pool()
        with self._errors():
            # One direct connection first: an unreachable server fails here at once, clearly.
            with self._connect() as conn:
                self._config = self._open_tables(conn, language, asked)
            self._pool.open(wait=False)

    # ---- connections and errors ---------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=int(WAIT_S))

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(
            self._conninfo,
            min_size=0,  # connections made on demand, none retried in the background
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "connect_timeout": int(WAIT_S)},
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced
            timeout=WAIT_S,
            open=False,
            name=f"embedstack-{self.table}",
        )

    def _current_pool(self) -> ConnectionPool:
        """The pool; after the server went away, a direct connection first (failing at once
        while it is still down) and then a fresh pool (the old one's back-off would keep
        failing for a while after the server is back)."""
        with self._pool_lock:
            if self._broken:
                self._connect().close()
                old, self._pool = self._pool, self._new_pool()
                self._pool.open(wait=False)
                self._broken = False
                old.close(timeout=0)
            return self._pool

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """psycopg's exceptions as the one-line errors users get (no raw driver error)."""
        try:
            yield
        except EmbedstackError:
            raise
        except PoolTimeout:
            self._broken = True
            raise StorageError(
                f"{self.where} did not answer within {WAIT_S:.0f} s (is the server running and "
                "reachable?); nothing was changed"
            ) from None
        except psycopg.errors.UniqueViolation as exc:
            raise InvalidInputError(f"ids must be unique: {_first_line(exc)}") from None
        except psycopg.errors.ReadOnlySqlTransaction:
            raise ReadOnlyCollectionError(f"{self.where} is read-only (a standby?)") from None
        except psycopg.OperationalError as exc:
            self._broken = True
            raise StorageError(
                f"{self.where}: connection failed or lost ({_first_line(exc)}); "
                "a write in progress is committed whole or not at all"
            ) from None
        except psycopg.Error as exc:
            raise StorageError(f"{self.where}: {_first_line(exc)}") from None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled autocommit connection, for one call (counted; errors translated)."""
        with self._calls.call(), self._errors(), self._current_pool().connection() as conn:
            yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Connection]:
        """A read-only REPEATABLE READ transaction: several statements see one committed state."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection]:
        """One write transaction, after the collection's advisory lock (one writer at a time,
        across processes; READ COMMITTED, so it sees what the previous writer committed)."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            yield conn

    # ---- tables -------------------------------------------------------------------------------

    def _open_tables(self, conn: psycopg.Connection, language: str, vectors: str | None) -> str:
        """Create the tables on first open (nothing is written when they exist); check the
        dimension and the vector type; return the text-search configuration the keyword index
        was built with."""
        state = self._read_state(conn)
        if state is None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                state = self._read_state(conn)  # another process may have created them
                if state is None:
                    self._create_tables(conn, language)
                    state = self._read_state(conn)
        assert state is not None
        dim, config = state
        if dim != self.dim:
            raise CollectionError(
                f"{self.where} holds {dim}-d vectors; this collection's model gives {self.dim}-d"
            )
        held = self._column_type(conn)
        if vectors is not None and vectors != held:
            raise CollectionError(
                f"{self.where} holds {held} vectors; vectors={vectors} in the URL applies only "
                "when the tables are created"
            )
        self._vectors = held
        return config

    def _column_type(self, conn: psycopg.Connection) -> str:
        """`vector` or `halfvec`: what the embedding column was created as."""
        row = conn.execute(
            "SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = %s::regclass AND a.attname = 'embedding'",
            (f'"{self.table}"',),
        ).fetchone()
        assert row is not None
        return str(row[0])

    def _read_state(self, conn: psycopg.Connection) -> tuple[int, str] | None:
        found = conn.execute("SELECT to_regclass(%s)", (f'"{self.table}__state"',)).fetchone()
        if found is None or found[0] is None:
            return None
        row = conn.execute(
            sql.SQL("SELECT dim, text_search::text FROM {}").format(self._state)
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def _create_tables(self, conn: psycopg.Connection, language: str) -> None:
        has_vector = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        if not has_vector:
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                raise StorageError(
                    f"{self.where}: pgvector is not available ({_first_line(exc)}); install it "
                    "and run CREATE EXTENSION vector as a superuser"
                ) from None
        available = {row[0] for row in conn.execute("SELECT cfgname FROM pg_ts_config")}
        config = text_search_config(language, available)
        names = {
            "t": self._t,
            "sources": self._sources,
            "lexemes": self._lexemes,
            "state": self._state,
            "hnsw": sql.Identifier(f"{self.table}__hnsw"),
            "terms_gin": sql.Identifier(f"{self.table}__terms"),
            "fields_gin": sql.Identifier(f"{self.table}__fields"),
            "dim": sql.Literal(self.dim),
            "vectors": sql.SQL(self._vectors),
            "ops": sql.SQL(f"{self._vectors}_ip_ops"),
            "m": sql.Literal(self._hnsw_m),
            "ef": sql.Literal(max(64, 2 * self._hnsw_m)),
        }
        for statement in (
            """CREATE TABLE {t} (
                vid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- insertion order
                id text NOT NULL UNIQUE,
                text text NOT NULL,
                metadata json NOT NULL,   -- as given, verbatim (jsonb would turn 1e300 to an int)
                fields jsonb NOT NULL,    -- filterable values, exactly comparable
                embedding {vectors}({dim}) NOT NULL,
                terms tsvector NOT NULL,
                length integer NOT NULL   -- tokens, for BM25
            )""",
            "CREATE INDEX {hnsw} ON {t} USING hnsw (embedding {ops}) "
            "WITH (m = {m}, ef_construction = {ef})",
            "CREATE INDEX {terms_gin} ON {t} USING gin (terms)",
            "CREATE INDEX {fields_gin} ON {t} USING gin (fields jsonb_path_ops)",
            """CREATE TABLE {sources} (
                path text PRIMARY KEY, content_hash text NOT NULL, recipe text NOT NULL,
                format text NOT NULL, chunk_ids jsonb NOT NULL,
                ingested_at double precision NOT NULL
            )""",
            "CREATE TABLE {lexemes} (lexeme text PRIMARY KEY, df integer NOT NULL)",
            """CREATE TABLE {state} (
                one boolean PRIMARY KEY DEFAULT true CHECK (one), dim integer NOT NULL,
                text_search regconfig NOT NULL, chunks bigint NOT NULL, length bigint NOT NULL
            )""",
        ):
            conn.execute(sql.SQL(statement).format(**names))
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (true, %s, %s::regconfig, 0, 0)").format(self._state),
            (self.dim, config),
        )

    # ---- writes -------------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> None:
        """Insert or replace rows by id, in one transaction (a replaced row moves to the end)."""
        rows = self._rows(ids, texts, metadatas, vectors)
        with self._write() as conn:
            self._delete_rows(conn, list(ids))
            self._insert_rows(conn, rows)

    def delete(self, ids: Sequence[str]) -> int:
        with self._write() as conn:
            return self._delete_rows(conn, list(ids))

    def replace_source(
        self,
        source: SourceRecord,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> int:
        """Swap a file's chunks and its manifest entry in one transaction; returns how many
        old chunks it had."""
        return self.replace_sources([FileRows(source, texts, metadatas, vectors)])[0]

    def replace_sources(self, files: Sequence[FileRows]) -> list[int]:
        """Several files in one transaction (one commit for an ingest batch)."""
        checked = [
            (f.source, self._rows(f.source.chunk_ids, f.texts, f.metadatas, f.vectors))
            for f in files
        ]  # before the transaction: bad rows fail without touching the database
        with self._write() as conn:
            return [self._replace_source(conn, source, rows) for source, rows in checked]

    def _replace_source(self, conn: Any, source: SourceRecord, rows: Any) -> int:
        old = self._source(conn, source.path)
        self._delete_rows(conn, [*(old.chunk_ids if old else ()), *source.chunk_ids])
        self._insert_rows(conn, rows)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} VALUES (%s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT (path) DO "
                "UPDATE SET content_hash = excluded.content_hash, recipe = excluded.recipe, "
                "format = excluded.format, chunk_ids = excluded.chunk_ids, "
                "ingested_at = excluded.ingested_at"
            ).format(self._sources),
            (source.path, source.content_hash, source.recipe, source.format,
             json.dumps(list(source.chunk_ids)), source.ingested_at),
        )  # fmt: skip
        return len(old.chunk_ids) if old else 0

    def remove_source(self, path: str) -> int:
        with self._write() as conn:
            old = self._source(conn, path)
            if old is None:
                return 0
            removed = self._delete_rows(conn, list(old.chunk_ids))
            conn.execute(sql.SQL("DELETE FROM {} WHERE path = %s").format(self._sources), (path,))
            return removed

    def _rows(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> list[tuple[str, ...]]:
        """The rows to insert, as text columns; bad shapes and NUL characters (PostgreSQL
        cannot store them) are refused before anything is written."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise InvalidInputError(
                f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}"
            )
        if not len(ids) == len(texts) == len(metadatas):
            raise InvalidInputError(
                f"{len(ids)} ids, {len(texts)} texts and {len(metadatas)} metadata: must match"
            )
        rows: list[tuple[str, ...]] = []
        for id_, text, meta, vector in zip(ids, texts, metadatas, vectors, strict=True):
            encoded = json.dumps(meta, ensure_ascii=False)
            if "\x00" in text or "\x00" in id_ or "\\u0000" in encoded:
                raise InvalidInputError(
                    f"row {id_!r} holds a NUL character, which PostgreSQL cannot store"
                )
            extra = [meta[f] for f in INDEXED_FIELDS if isinstance(meta.get(f), str)]
            indexed = "\n".join([text, *extra])
            rows.append((id_, text, encoded, fields_json(meta), _vector_text(vector), indexed))
        return rows

    def _insert_rows(self, conn: psycopg.Connection, rows: list[tuple[str, ...]]) -> None:
        """Insert new rows, their terms' document frequencies and the totals, in one statement."""
        if not rows:
            return
        columns = [list(column) for column in zip(*rows, strict=True)]
        conn.execute(
            sql.SQL(
                """WITH added AS (
                    INSERT INTO {t} (id, text, metadata, fields, embedding, terms, length)
                    SELECT r.id, r.text, r.metadata::json, r.fields::jsonb,
                           r.embedding::{vectors}, v.terms,
                           (SELECT coalesce(sum(cardinality(e.positions)), 0)
                              FROM unnest(v.terms) AS e)
                    FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                                %s::text[]) WITH ORDINALITY
                         AS r(id, text, metadata, fields, embedding, indexed, n)
                    CROSS JOIN LATERAL (SELECT to_tsvector(%s::regconfig, r.indexed) AS terms) v
                    ORDER BY r.n
                    RETURNING terms, length
                ), counts AS (
                    SELECT e.lexeme, count(*) AS n FROM added, unnest(added.terms) AS e
                    GROUP BY e.lexeme
                ), lexemes AS (
                    INSERT INTO {lexemes} SELECT lexeme, n FROM counts
                    ON CONFLICT (lexeme) DO UPDATE SET df = {lexemes}.df + excluded.df
                )
                UPDATE {state} SET chunks = chunks + (SELECT count(*) FROM added),
                    length = length + (SELECT coalesce(sum(length), 0) FROM added)"""
            ).format(
                t=self._t, lexemes=self._lexemes, state=self._state, vectors=sql.SQL(self._vectors)
            ),
            [*columns, self._config],
        )

    def _delete_rows(self, conn: psycopg.Connection, ids: list[str]) -> int:
        """Delete rows by id with their terms' counts; returns how many existed."""
        if not ids:
            return 0
        found = conn.execute(
            sql.SQL(
                """WITH gone AS (
                    DELETE FROM {t} WHERE id = ANY(%s::text[]) RETURNING terms, length
                ), counts AS (
                    SELECT e.lexeme, count(*) AS n FROM gone, unnest(gone.terms) AS e
                    GROUP BY e.lexeme
                ), lexemes AS (
                    UPDATE {lexemes} AS l SET df = l.df - c.n FROM counts AS c
                    WHERE l.lexeme = c.lexeme
                ), state AS (
                    UPDATE {state} SET chunks = chunks - (SELECT count(*) FROM gone),
                        length = length - (SELECT coalesce(sum(length), 0) FROM gone)
                )
                SELECT count(*) FROM gone"""
            ).format(t=self._t, lexemes=self._lexemes, state=self._state),
            (ids,),
        ).fetchone()
        return int(found[0]) if found else 0

    # ---- the manifest -------------------------------------------------------------------------

    def _source(self, conn: psycopg.Connection, path: str) -> SourceRecord | None:
        row = conn.execute(
            sql.SQL("SELECT * FROM {} WHERE path = %s").format(self._sources), (path,)
        ).fetchone()
        return _record(row) if row else None

    def source(self, path: str) -> SourceRecord | None:
        with self._connection() as conn:
            return self._source(conn, path)

    def sources(self) -> list[SourceRecord]:
        with self._connection() as conn:
            rows = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY path").format(self._sources))
            return [_record(row) for row in rows]

    # ---- reads --------------------------------------------------------------------------------

    def _where(self, where: FilterNode | None) -> tuple[sql.Composable, list[Any]]:
        if where is None or where == MATCH_ALL:
            return sql.SQL("true"), []
        return compile_postgres(where)

    def count(self, where: FilterNode | None = None) -> int:
        with self._connection() as conn:
            return self._count(conn, where)

    def _count(self, conn: psycopg.Connection, where: FilterNode | None) -> int:
        if where is None or where == MATCH_ALL:
            query = sql.SQL("SELECT chunks FROM {}").format(self._state)
            row = conn.execute(query).fetchone()
        else:
            condition, params = self._where(where)
            query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(self._t, condition)
            row = conn.execute(query, params).fetchone()
        return int(row[0]) if row else 0

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        with self._connection() as conn:
            rows = conn.execute(
                sql.SQL("SELECT id, text, metadata FROM {} WHERE id = ANY(%s::text[])").format(
                    self._t
                ),
                (list(ids),),
            ).fetchall()
        by_id = {r[0]: Chunk(r[0], r[1], r[2]) for r in rows}
        return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]

    def ids(self, where: FilterNode | None = None) -> list[str]:
        condition, params = self._where(where)
        with self._connection() as conn:
            query = sql.SQL("SELECT id FROM {} WHERE {} ORDER BY vid").format(self._t, condition)
            return [row[0] for row in conn.execute(query, params)]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        with self._connection() as conn:
            rows = conn.execute(
                sql.SQL("SELECT id, embedding::text FROM {} WHERE id = ANY(%s::text[])").format(
                    self._t
                ),
                (list(ids),),
            ).fetchall()
        found = {r[0]: np.array(json.loads(r[1]), dtype=np.float32) for r in rows}
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for row, id_ in enumerate(ids):
            if id_ in found:
                out[row] = found[id_]
        return out

    def dense(self, queries: np.ndarray, k: int, where: FilterNode | None = None) -> list[Scored]:
        """Top-k (id, cosine) per query among the rows `where` lets through.

        The HNSW index with iterative scans (pgvector >= 0.8) first; if that returns fewer
        than k while more rows match, the query is run again exactly, so k hits come back
        whenever k rows match. The planner may also choose the exact path itself (a filter
        the GIN index answers with few rows)."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise InvalidInputError(
                f"query vectors must have dimension {self.dim}, got shape {queries.shape}"
            )
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        condition, params = self._where(where)
        search = sql.SQL(
            "SELECT id, -(embedding <#> %s::{vectors}) FROM {t} WHERE {condition} "
            "ORDER BY embedding <#> %s::{vectors} LIMIT %s"
        ).format(t=self._t, condition=condition, vectors=sql.SQL(self._vectors))
        ef = str(min(max(self._ef_search, k), MAX_EF_SEARCH))
        results: list[Scored] = []
        with self._snapshot() as conn:
            conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                (ef,),
            )
            matching: int | None = None
            for query in queries:
                text = _vector_text(query)
                args = [text, *params, text, k]
                found = [(r[0], float(r[1])) for r in conn.execute(search, args)]
                if len(found) < k:
                    if matching is None:
                        matching = self._count(conn, where)
                    if len(found) < matching:  # the index came up short: search exactly
                        conn.execute("SET LOCAL enable_indexscan = off")
                        found = [(r[0], float(r[1])) for r in conn.execute(search, args)]
                        conn.execute("SET LOCAL enable_indexscan = on")
                found.sort(key=lambda hit: -hit[1])  # relaxed_order: nearly sorted
                results.append(found)
        return results

    def keyword(self, query: str, k: int, where: FilterNode | None = None) -> Scored:
        """Top-k (id, BM25) for a query text among the rows `where` lets through."""
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        if "\x00" in query:
            query = query.replace("\x00", " ")
        condition, params = self._where(where)
        with self._snapshot() as conn:
            lexemes = Counter(
                dict(
                    conn.execute(
                        "SELECT e.lexeme, cardinality(e.positions) "
                        "FROM unnest(to_tsvector(%s::regconfig, %s)) AS e",
                        (self._config, query),
                    ).fetchall()
                )
            )
            if not lexemes:
                return []
            terms = [term for term, _ in lexemes.most_common(MAX_QUERY_TERMS)]
            tsquery = " | ".join(_quote_lexeme(term) for term in terms)
            rows = conn.execute(
                sql.SQL(
                    """WITH stats AS (
                        SELECT chunks, greatest(length::float8 / greatest(chunks, 1), 1) AS avg
                        FROM {state}
                    ), weights AS (
                        SELECT q.lexeme,
                               q.n * ln(1 + (s.chunks - l.df + 0.5) / (l.df + 0.5)) AS w
                        FROM unnest(%s::text[], %s::int[]) AS q(lexeme, n)
                        JOIN {lexemes} AS l ON l.lexeme = q.lexeme, stats AS s
                        WHERE l.df > 0
                    ), hits AS (
                        SELECT vid, id, terms, length FROM {t}
                        WHERE terms @@ %s::tsquery AND {condition}
                    )
                    SELECT h.id, sum(w.w * e.tf * (%s + 1)
                                     / (e.tf + %s * (1 - %s + %s * h.length / s.avg))) AS score
                    FROM hits AS h
                    CROSS JOIN LATERAL (
                        SELECT u.lexeme, cardinality(u.positions) AS tf FROM unnest(h.terms) AS u
                    ) AS e
                    JOIN weights AS w ON w.lexeme = e.lexeme
                    CROSS JOIN stats AS s
                    GROUP BY h.vid, h.id ORDER BY score DESC, h.vid LIMIT %s"""
                ).format(
                    state=self._state, lexemes=self._lexemes, t=self._t, condition=condition
                ),
                [terms, [lexemes[t] for t in terms], tsquery, *params,
                 self._k1, self._k1, self._b, self._b, k],
            ).fetchall()  # fmt: skip
        return [(row[0], float(row[1])) for row in rows]

    # ---- checks and closing -------------------------------------------------------------------

    def check(self) -> list[str]:
        """Problems found by a full check of the derived data against the rows."""
        problems: list[str] = []
        with self._snapshot() as conn:
            q = sql.SQL
            chunks, length = conn.execute(
                q("SELECT count(*), coalesce(sum(length), 0) FROM {}").format(self._t)
            ).fetchone() or (0, 0)
            state = conn.execute(q("SELECT chunks, length FROM {}").format(self._state)).fetchone()
            if state is None or (int(state[0]), int(state[1])) != (int(chunks), int(length)):
                problems.append(f"{chunks} chunks of {length} tokens, but the totals say {state}")
            wrong = conn.execute(
                q(
                    """SELECT count(*) FROM (
                        SELECT e.lexeme, count(*) AS n FROM {t}, unnest(terms) AS e
                        GROUP BY e.lexeme
                    ) AS c FULL JOIN (SELECT * FROM {lexemes} WHERE df <> 0) AS l
                    ON l.lexeme = c.lexeme WHERE l.df IS DISTINCT FROM c.n"""
                ).format(t=self._t, lexemes=self._lexemes)
            ).fetchone()
            if wrong and wrong[0]:
                problems.append(f"{wrong[0]} keyword terms have wrong document frequencies")
            missing = conn.execute(
                q(
                    """SELECT s.path, count(*) FROM {sources} AS s,
                        jsonb_array_elements_text(s.chunk_ids) AS c(id)
                    WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {t}.id = c.id) GROUP BY s.path"""
                ).format(sources=self._sources, t=self._t)
            ).fetchall()
            problems += [f"manifest entry {path} names {n} missing chunks" for path, n in missing]
        return problems

    def close(self) -> None:
        """Wait for the calls in progress in other threads, then close the pool."""
        if self._calls.close():
            self._pool.close()


def _quote_lexeme(lexeme: str) -> str:
    """A lexeme as a tsquery operand (quoted, so it is taken as it is)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _record(row: tuple) -> SourceRecord:
    path, content_hash, recipe, format_, chunk_ids, ingested_at = row
    return SourceRecord(path, content_hash, recipe, format_, tuple(chunk_ids), float(ingested_at))
