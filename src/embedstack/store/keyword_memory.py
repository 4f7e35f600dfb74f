"""BM25 over an in-memory mirror of the keyword tables: the postings as numpy arrays.

Why: scoring in SQLite reads every posting of every query term through SQLite's VM and sorts
them by chunk (GROUP BY); at 100k chunks that took 18 ms a query (p95 45 ms). The same postings
as numpy arrays score in a millisecond or two. SQLite stays the truth: a mirror is loaded from
one snapshot and used only while its generation is the database's. After a write it is caught up
from that write's rows (chunk vids only grow, so new rows are those above the largest vid seen,
and rows gone show as a count that does not add up); whatever it cannot explain (totals that do
not match the stored statistics, another analyzer's index, a catch-up too big to be cheap) sends
searches back to SQL until a fresh mirror is loaded.

Written here rather than taken from bm25s: bm25s stores each posting's finished score, which
every write changes (the chunk count and the average length move, so every idf and length norm
does), has no deletes, and knows nothing of the document mix (`keyword_index.py`). Here the
formula is evaluated at query time, term by term as the SQL does, so scores and ranking are the
SQL path's (up to the order floating-point sums are added in).

Documents are not mirrored: a document's term frequency is the sum over its chunks, its length
the sum of theirs, so both come from the chunk postings (`KeywordMemory` is exact without the
`document_postings` table).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote

import numpy as np

log = logging.getLogger(__name__)

STATS = ("keyword_chunks", "keyword_terms", "keyword_documents", "keyword_document_terms")
# Catching up costs a read of the new rows' postings; past this share of the mirror's rows a
# fresh load is as cheap and leaves no masked postings behind.
CATCH_UP_LIMIT = 0.25
# Deleted rows stay in the mirror's arrays, masked; past this share of dead postings, reload.
DEAD_LIMIT = 0.25
# Scores of the terms queried, kept per committed state: bounded, as common terms are big.
CACHE_BYTES = 64 * 2**20
MAX_SEGMENTS = 16  # one per catch-up; past this a reload merges them
Stats = tuple[int, int, int, int]


@dataclass(frozen=True)
class Segment:
    """Postings sorted by term: term -> [offsets[i], offsets[i + 1]) in `vids` and `tfs`."""

    terms: dict[str, int]
    offsets: np.ndarray
    vids: np.ndarray
    tfs: np.ndarray

    @staticmethod
    def from_rows(
        terms: list[str], counts: list[int], vids: np.ndarray, tfs: np.ndarray
    ) -> Segment:
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return Segment({t: i for i, t in enumerate(terms)}, offsets, vids, tfs)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        i = self.terms.get(term)
        if i is None:
            return None
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.vids[start:end], self.tfs[start:end]


@dataclass(frozen=True)
class Mirror:
    """One committed state of the keyword index. Never changed: a catch-up makes a new one, so
    searches running on the old one need no lock."""

    generation: int
    signature: str
    stats: Stats  # as in `meta`: chunks, their terms, documents, theirs
    segments: tuple[Segment, ...]
    alive: np.ndarray  # bool per vid
    length: np.ndarray  # terms per chunk, per vid
    document: np.ndarray  # document id per vid, -1 for none
    document_length: np.ndarray  # terms per document id (sum over its live chunks)
    top_vid: int  # the largest vid loaded: rows added later have larger ones
    live: int
    dead_postings: int
    epoch: int  # the vector epoch: compaction renumbers every vid, so no catching up across it
    frequencies: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    scores: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )
    cached: list[int] = field(default_factory=lambda: [0], compare=False, repr=False)

    def scored_postings(
        self, term: str, count: int, bm25: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(live vids, tfs, BM25 contributions) of a term that the query holds `count` times.

        Remembered for this state (up to CACHE_BYTES): within one committed state a term's
        scores never change, and common terms come back query after query."""
        key = (term, count)
        found = self.scores.get(key)
        if found is None:
            vids, tfs = self.term_postings(term)
            weight = _idf(max(self.stats[0], 1), len(vids)) * count
            found = vids, tfs, bm25(vids, tfs, weight) if len(vids) else _EMPTY_SCORES
            size = sum(array.nbytes for array in found)
            if self.cached[0] + size <= CACHE_BYTES:
                self.cached[0] += size
                self.scores[key] = found
        return found

    def document_frequency(self, term: str, vids: np.ndarray) -> int:
        """How many documents hold the term (its live `vids`), remembered for this state:
        common terms come back in query after query."""
        found = self.frequencies.get(term)
        if found is None:
            docs = self.document[vids]
            docs = docs[docs >= 0]
            found = int(np.count_nonzero(np.bincount(docs))) if len(docs) else 0
            self.frequencies[term] = found
        return found

    @property
    def postings(self) -> int:
        return sum(len(s.vids) for s in self.segments)

    def term_postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """The live (vids, tfs) of a term across segments."""
        found = [p for s in self.segments if (p := s.postings(term)) is not None]
        if not found:
            return _EMPTY, _EMPTY
        vids = found[0][0] if len(found) == 1 else np.concatenate([v for v, _ in found])
        tfs = found[0][1] if len(found) == 1 else np.concatenate([t for _, t in found])
        if self.dead_postings:
            keep = self.alive[vids]
            vids, tfs = vids[keep], tfs[keep]
        return vids, tfs


_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY_SCORES = np.zeros(0)


class KeywordMemory:
    """The mirror of one collection's keyword tables, kept current by `current(db)`.

    `mode`: "auto" loads the mirror in a background thread once a second search asks for it
    (a one-off search, like the CLI's, reads SQL and loads nothing), "eager" loads it in the
    searching thread, "off" never loads one.
    """

    def __init__(self, mode: str = "auto") -> None:
        self.mode = mode
        self._mirror: Mirror | None = None
        self._lock = threading.Lock()  # one catch-up at a time
        self._loading: threading.Thread | None = None
        self._asked = 0

    def current(self, db: sqlite3.Connection, signature: str) -> Mirror | None:
        """The mirror of the database's last commit, or None (search with SQL instead)."""
        if self.mode == "off":
            return None
        head = _head(db)
        if head is None:
            return None
        mirror = self._mirror
        if mirror is not None and (mirror.generation, mirror.signature) == head[:2]:
            return mirror
        if head[1] != signature:  # another analyzer's index: this one's terms would not match
            return None
        with self._lock:
            mirror = self._mirror
            if mirror is not None and (mirror.generation, mirror.signature) == head[:2]:
                return mirror
            if mirror is not None:
                caught_up = self._catch_up(db, mirror)
                if caught_up is not None:
                    self._mirror = caught_up
                    return caught_up
            if self.mode == "eager":
                loaded = _in_snapshot(db, load)
                if loaded is None:  # the tables and their statistics disagree
                    self.mode = "off"
                    return None
                if loaded.signature != signature:
                    return None
                self._mirror = loaded
                return loaded
            self._asked += 1
            if self._asked >= 2 and (self._loading is None or not self._loading.is_alive()):
                self._loading = threading.Thread(
                    target=self._load_in_background,
                    args=(_database_file(db),),
                    name="embedstack-bm25-load",
                    daemon=True,  # a process may exit while it loads: it is only a cache
                )
                self._loading.start()
            return None

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background load under way (tests, benchmarks)."""
        loading = self._loading
        if loading is not None:
            loading.join(timeout)

    def _catch_up(self, db: sqlite3.Connection, mirror: Mirror) -> Mirror | None:
        try:
            return _in_snapshot(db, lambda snapshot: catch_up(snapshot, mirror))
        except sqlite3.Error:
            return None

    def _load_in_background(self, path: str) -> None:
        try:
            db = _open_read_only(path)
            try:
                mirror = _in_snapshot(db, load)
            finally:
                db.close()
        except (sqlite3.Error, OSError, MemoryError) as exc:  # a cache: SQL still answers
            log.info("keyword index of %s not loaded into memory: %s", path, exc)
            return
        if mirror is None:  # the tables and their statistics disagree: leave it to SQL
            log.warning("keyword index of %s does not add up; searching it with SQL", path)
            self.mode = "off"
            return
        with self._lock:
            if self._mirror is None or mirror.generation >= self._mirror.generation:
                self._mirror = mirror


_HEAD = "SELECT key, value FROM meta WHERE key IN ({})".format(
    ", ".join(f"'{key}'" for key in ("generation", "keyword_index", "vector_epoch", *STATS))
)


def _head(db: sqlite3.Connection) -> tuple[int, str, Stats, int] | None:
    """(generation, keyword index signature, statistics, vector epoch) of the last commit, in
    one read. The epoch moves when compaction renumbers the rows (vids)."""
    found = dict(db.execute(_HEAD).fetchall())
    if "generation" not in found or "keyword_index" not in found:
        return None
    chunks, chunk_terms, documents, document_terms = (int(found.get(s, 0)) for s in STATS)
    stats = (chunks, chunk_terms, documents, document_terms)
    epoch = int(found.get("vector_epoch", 0))
    return int(found["generation"]), str(found["keyword_index"]), stats, epoch


T = TypeVar("T")


def _in_snapshot(db: sqlite3.Connection, read: Callable[[sqlite3.Connection], T]) -> T:
    """Run `read(db)` inside one read transaction (one committed state for all its queries)."""
    if db.in_transaction:
        return read(db)
    db.execute("BEGIN")
    try:
        return read(db)
    finally:
        db.execute("COMMIT")


def _database_file(db: sqlite3.Connection) -> str:
    return str(db.execute("PRAGMA database_list").fetchone()[2])


def _open_read_only(path: str) -> sqlite3.Connection:
    """A connection of the loader thread's own; read-only, or immutable in a read-only folder
    (where SQLite cannot create WAL's -shm file)."""
    for mode in ("?mode=ro", "?immutable=1"):
        db = sqlite3.connect("file:" + quote(path) + mode, uri=True, isolation_level=None)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
            return db
        except sqlite3.OperationalError:
            db.close()
            if mode == "?immutable=1":
                raise
    raise AssertionError("unreachable")


def _int_column(db: sqlite3.Connection, sql: str, params: tuple = ()) -> np.ndarray:
    """One integer column as an array, read as one comma-joined string: several times faster
    than a Python tuple per row at millions of rows."""
    return _ints(db.execute(f"SELECT group_concat(x) FROM ({sql})", params).fetchone()[0])


def _ints(text: str | None) -> np.ndarray:
    if not text:
        return np.zeros(0, dtype=np.int64)
    return np.fromstring(text, dtype=np.int64, sep=",")


def _chunk_rows(db: sqlite3.Connection, where: str, params: tuple) -> tuple[np.ndarray, ...]:
    """(vids, lengths, documents) of the chunks `where` selects, documents -1 where none."""
    texts = db.execute(
        "SELECT group_concat(vid), group_concat(length), group_concat(COALESCE(document, -1)) "
        f"FROM keyword_chunks {where}",
        params,
    ).fetchone()
    vids, lengths, documents = (_ints(text) for text in texts)
    return vids, lengths, documents


def _segment(db: sqlite3.Connection, where: str, params: tuple) -> Segment:
    """The postings `where` selects, grouped by term: one pass over the table, one row per term
    (both lists of a term are built from the same rows in the same order)."""
    rows = db.execute(
        "SELECT term, COUNT(*), group_concat(vid), group_concat(tf) "
        f"FROM postings {where} GROUP BY term",
        params,
    ).fetchall()
    vids = _narrow(_ints(",".join(row[2] for row in rows)))
    tfs = _narrow(_ints(",".join(row[3] for row in rows)))
    return Segment.from_rows([row[0] for row in rows], [row[1] for row in rows], vids, tfs)


def _narrow(values: np.ndarray) -> np.ndarray:
    """int32 where the values fit (they always do in practice): half the memory."""
    if not len(values) or (values.min() >= -(2**31) and values.max() < 2**31):
        return values.astype(np.int32)
    return values


def load(db: sqlite3.Connection) -> Mirror | None:
    """A mirror of the whole index, read inside the caller's snapshot; None when the tables
    do not add up to their stored statistics."""
    head = _head(db)
    if head is None:
        raise sqlite3.OperationalError("no generation or keyword index signature in meta")
    generation, signature, stats, epoch = head
    vids, lengths, documents = _chunk_rows(db, "", ())
    size = int(vids.max()) + 1 if len(vids) else 0
    alive = np.zeros(size, dtype=bool)
    alive[vids] = True
    length = np.zeros(size, dtype=np.int64)
    length[vids] = lengths
    document = np.full(size, -1, dtype=np.int64)
    document[vids] = documents
    segment = _segment(db, "", ())
    mirror = Mirror(
        generation, signature, stats, (segment,), alive, length, document,
        _document_lengths(document, length, alive), size - 1, len(vids), 0, epoch,
    )  # fmt: skip
    return mirror if _agrees(mirror) else None


def _document_lengths(document: np.ndarray, length: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Terms per document id, for every id any row names: deleted rows keep theirs, and
    `_document_scores` indexes by it (sized to the live ones, a deleted last document was an
    IndexError in every search)."""
    size = int(document.max()) + 1 if len(document) else 0
    live = alive & (document >= 0)
    if not live.any():
        return np.zeros(size, dtype=np.int64)
    return np.bincount(document[live], weights=length[live], minlength=size).astype(np.int64)


def catch_up(db: sqlite3.Connection, mirror: Mirror) -> Mirror | None:
    """The mirror moved to the database's state (inside the caller's snapshot), or None when
    that is not cheap or not explained by rows added above `top_vid` and rows deleted."""
    head = _head(db)
    if head is None or head[1] != mirror.signature or head[3] != mirror.epoch:
        return None  # another index, or rows renumbered by compaction: load afresh
    generation, signature, stats, epoch = head
    if mirror.live and stats[0] - mirror.live > CATCH_UP_LIMIT * mirror.live:
        return None
    new_vids, new_lengths, new_documents = _chunk_rows(db, "WHERE vid > ?", (mirror.top_vid,))
    size = max(len(mirror.alive), int(new_vids.max()) + 1 if len(new_vids) else 0)
    alive = _grown(mirror.alive, size, False)
    length = _grown(mirror.length, size, 0)
    document = _grown(mirror.document, size, -1)
    removed = mirror.live + len(new_vids) - stats[0]
    dead_postings = mirror.dead_postings
    if removed:
        if removed < 0:
            return None
        old = _int_column(
            db, "SELECT vid AS x FROM keyword_chunks WHERE vid <= ?", (mirror.top_vid,)
        )
        still = np.zeros(size, dtype=bool)
        still[old] = True
        if not alive[old].all():  # rows the mirror never had: not ours to explain
            return None
        gone = np.flatnonzero(alive & ~still)
        if len(gone) != removed:
            return None
        alive[gone] = False
        # Each gone chunk had one posting per distinct term: its length bounds them.
        dead_postings += int(length[gone].sum())
    alive[new_vids] = True
    length[new_vids] = new_lengths
    document[new_vids] = new_documents
    segments = mirror.segments
    if len(new_vids):
        segments = (*segments, _segment(db, "WHERE vid > ?", (mirror.top_vid,)))
    caught_up = Mirror(
        generation, signature, stats, segments, alive, length, document,
        _document_lengths(document, length, alive), size - 1, int(alive.sum()), dead_postings,
        epoch,
    )  # fmt: skip
    if not _agrees(caught_up) or len(segments) > MAX_SEGMENTS:
        return None
    if caught_up.dead_postings > DEAD_LIMIT * caught_up.postings:
        return None
    return caught_up


def _grown(array: np.ndarray, size: int, fill: object) -> np.ndarray:
    out = np.full(size, fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


def _agrees(mirror: Mirror) -> bool:
    """The mirror's totals are the stored statistics: nothing was missed."""
    chunks, chunk_terms, documents, document_terms = mirror.stats
    live = mirror.alive
    documented = mirror.document[live & (mirror.document >= 0)]
    return (
        mirror.live == chunks
        and int(mirror.length[live].sum()) == chunk_terms
        and (np.count_nonzero(np.bincount(documented)) if len(documented) else 0) == documents
        and int(mirror.document_length.sum()) == document_terms
    )


def score(
    mirror: Mirror,
    query_terms: Counter[str],
    terms: list[str],
    k: int,
    k1: float,
    b: float,
    document_weight: float,
    mix_depth: int,
    allowed: np.ndarray | None,
) -> list[tuple[int, float]]:
    """Top-k (vid, score): the SQL path's BM25 and document mix, evaluated with numpy."""
    chunks, chunk_terms, documents, document_terms = mirror.stats
    chunks = max(chunks, 1)
    average = chunk_terms / chunks
    found, parts = [], []
    for term in terms:
        vids, tfs, contributions = mirror.scored_postings(
            term,
            query_terms[term],
            lambda v, f, weight: _bm25(weight, f, mirror.length[v], k1, b, average),
        )
        if len(vids):
            found.append((term, vids, tfs))
            parts.append(contributions)
    if not found:
        return []
    all_vids = np.concatenate([v for _, v, _ in found])
    contributions = np.concatenate(parts)
    if allowed is not None:
        permitted = np.zeros(len(mirror.alive), dtype=bool)
        permitted[allowed[allowed < len(permitted)]] = True
        keep = permitted[all_vids]
        all_vids, contributions = all_vids[keep], contributions[keep]
        if not len(all_vids):
            return []
    totals = np.bincount(all_vids, weights=contributions)
    hit = np.flatnonzero(totals)  # every contribution is > 0 (idf > 0, tf >= 1)
    mixing = document_weight > 0 and documents > 0
    vids, scores = _top(hit, totals[hit], max(k, mix_depth) if mixing else k)
    if not mixing:
        return list(zip(vids.tolist(), scores.tolist(), strict=True))
    document_scores = _document_scores(
        mirror, found, query_terms, mirror.document[vids], k1, b, documents, document_terms
    )
    # A chunk with no document counts as its own (the SQL's COALESCE(d.score, c.score)).
    evidence = np.where(np.isnan(document_scores), scores, document_scores)
    mixed = (scores + document_weight * evidence) / (1 + document_weight)
    vids, mixed = _top(vids, mixed, k)
    return list(zip(vids.tolist(), mixed.tolist(), strict=True))


def _document_scores(
    mirror: Mirror,
    found: list[tuple[str, np.ndarray, np.ndarray]],
    query_terms: Counter[str],
    wanted: np.ndarray,
    k1: float,
    b: float,
    documents: int,
    document_terms: int,
) -> np.ndarray:
    """BM25 of each wanted document (NaN where none: the chunk has no document)."""
    size = len(mirror.document_length)
    candidates = np.zeros(size + 1, dtype=bool)  # index + 1: -1 (no document) lands on 0
    candidates[wanted + 1] = True
    candidates[0] = False
    in_candidate = candidates[mirror.document + 1]  # per vid: its document is wanted
    average = document_terms / documents
    totals = np.zeros(size)
    present = np.zeros(size, dtype=bool)
    for term, vids, tfs in found:
        pick = in_candidate[vids]
        if not pick.any():
            continue
        tf = np.bincount(mirror.document[vids[pick]], weights=tfs[pick], minlength=size)
        ids = np.flatnonzero(tf)
        weight = _idf(documents, mirror.document_frequency(term, vids)) * query_terms[term]
        totals[ids] += _bm25(weight, tf[ids], mirror.document_length[ids], k1, b, average)
        present[ids] = True
    out = np.full(len(wanted), np.nan)
    has = wanted >= 0
    out[has] = np.where(present[wanted[has]], totals[wanted[has]], np.nan)
    return out


def _bm25(
    weight: float, tf: np.ndarray, length: np.ndarray, k1: float, b: float, average: float
) -> np.ndarray:
    """Lucene's BM25 term score, operation by operation as `keyword_index._BM25` in SQL."""
    tf = tf.astype(np.float64)
    return weight * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))


def _top(vids: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n best by score, ties by vid: the SQL's ORDER BY score DESC, vid LIMIT n."""
    if len(vids) > n:
        threshold = np.partition(scores, len(scores) - n)[len(scores) - n]
        keep = scores >= threshold
        vids, scores = vids[keep], scores[keep]
    order = np.lexsort((vids, -scores))[:n]
    return vids[order], scores[order]


def _idf(docs: int, df: int) -> float:
    """Lucene's BM25 idf (as `keyword_index._idf`)."""
    return math.log1p((docs - df + 0.5) / (df + 0.5))
