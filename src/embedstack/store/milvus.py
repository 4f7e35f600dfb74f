"""The Milvus store: rows in a Milvus server (`milvus://host:port[/name]`) or a Milvus Lite file
(`milvus-lite:PATH.db[#name]`), through pymilvus's MilvusClient.

Milvus has no multi-row transactions, so every write is made crash-safe by a small protocol
over two collections: `<name>` (the chunks) and `<name>_ctl` (the manifest, open write
transactions and a `head` marker). A write with batch number B (a nanosecond clock, also the
first primary key of its rows):

1. writes `txn:B` = pending (plus `txn:B:old:N` parts listing the primary keys it replaces);
2. inserts its new rows, each tagged `batch = B`;
3. commits by rewriting the one row `txn:B` as committed (with the new manifest entry);
4. rolls forward: writes the manifest entry `src:<path>`, deletes the replaced rows, sets
   `head` = B, deletes the txn rows.

Readers hide the rows of pending batches and the replaced rows of committed ones, so they see
either the old or the new state of each write, never a mix; the manifest read overlays
committed transactions. Each read is validated like a seqlock: the control rows are read
before and after, and the read is retried when a write changed state in between. Recovery (on
open, and before each write for this process's own failed writes) rolls committed
transactions forward and pending ones back (deleting their rows), so a server that went away
mid-ingest leaves no half-written document once it is back. A pending transaction of another
live process is left alone unless it is older than `STALE_TXN_S`.

Keyword search uses Milvus's BM25 function (a sparse field fed from `text`) where the server
has it (Milvus Lite, Milvus ≥ 2.5); on older servers (the `milvus` 2.3 package) the store has
no "keyword" capability and hybrid/keyword searches are refused with a clear error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from pymilvus import DataType, Function, FunctionType, MilvusClient

from embedstack.config import CollectionConfig
from embedstack.errors import CollectionError, InvalidInputError, StorageError
from embedstack.store.base import KEYWORD, MANIFEST, FileRows, Scored
from embedstack.store.call_gate import CallGate
from embedstack.store.filters import MATCH_ALL, FilterNode
from embedstack.store.milvus_filters import KEYS_FIELD, compile_milvus, filter_keys
from embedstack.types import Chunk, SourceRecord

log = logging.getLogger(__name__)

MAX_VARCHAR = 65_535  # bytes: Milvus's limit for a VARCHAR value
MAX_TOPK = 16_384  # Milvus's limit on k (and on one query's page)
PAGE = 4_096  # rows per page when reading every id
OLD_PER_PART = 2_000  # replaced primary keys listed per control row (fits MAX_VARCHAR)
STALE_TXN_S = 600  # a pending write of another process older than this is rolled back
READ_RETRIES = 50  # seqlock retries before a read gives up
CHECK_RETRIES = 5  # re-reads before check() reports an unfinished write
CALL_TIMEOUT_S = float(os.environ.get("EMBEDSTACK_MILVUS_TIMEOUT", "30"))
CONTROL = "embedstack_control"  # manifests and open writes of every collection on a server
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")
_OWNER = f"{socket.gethostname()}:{os.getpid()}"


def open_milvus(folder: Path, config: CollectionConfig) -> MilvusStore:
    """The store for a `milvus://…` or `milvus-lite:…` spec; a relative Lite path is relative
    to the collection folder, and the collection name defaults to one derived from the folder."""
    spec = config.store
    parts = urlsplit(spec)
    name = parts.fragment or (parts.path.strip("/") if parts.scheme == "milvus" else "")
    name = name or _default_name(folder)
    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"Milvus collection name {name!r} (from {spec!r}) must be letters, digits and _, "
            "not starting with a digit"
        )
    if parts.scheme == "milvus-lite":
        path = Path(parts.path)
        if not path.is_absolute():
            path = Path(folder) / path
        if path.suffix != ".db":
            raise InvalidInputError(f"a Milvus Lite file must end in .db, got {spec!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return MilvusStore(str(path), name, config.dim, where=str(path), index=config.index)
    if not parts.hostname:
        raise InvalidInputError(f"{spec!r} names no host; use milvus://host:port")
    uri = f"http://{parts.hostname}:{parts.port or 19530}"
    token = os.environ.get("MILVUS_TOKEN", "")
    return MilvusStore(uri, name, config.dim, token=token, where=uri, index=config.index)


def _default_name(folder: Path) -> str:
    import hashlib

    absolute = str(Path(folder).absolute())
    stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(absolute).name)[:40]
    return f"embedstack_{stem}_{hashlib.sha1(absolute.encode()).hexdigest()[:10]}"


def _pid_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's writer: only its age tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class _Txn:
    batch: int
    state: str  # "pending" or "committed"
    owner: str
    started: float
    source: dict[str, Any] | None = None  # the manifest entry it writes
    removed_source: str | None = None  # the manifest entry it deletes
    old: tuple[int, ...] = ()  # primary keys it replaces


@dataclass(frozen=True)
class _View:
    """What a reader must hide, from one read of the control rows."""

    token: tuple[tuple[str, str], ...]
    txns: tuple[_Txn, ...] = field(default=())

    def hide(self) -> str | None:
        pending = [t.batch for t in self.txns if t.state == "pending"]
        replaced = [pk for t in self.txns if t.state == "committed" for pk in t.old]
        parts = []
        if pending:
            parts.append(f"batch not in {pending}")
        if replaced:
            parts.append(f"pk not in {replaced}")
        return " and ".join(parts) or None

    def source_overlay(self) -> dict[str, dict[str, Any] | None]:
        out: dict[str, dict[str, Any] | None] = {}
        for txn in sorted(self.txns, key=lambda t: t.batch):
            if txn.state != "committed":
                continue
            if txn.removed_source is not None:
                out[txn.removed_source] = None
            if txn.source is not None:
                out[txn.source["path"]] = txn.source
        return out


def _record(data: Mapping[str, Any]) -> SourceRecord:
    return SourceRecord(
        data["path"], data["content_hash"], data["recipe"], data["format"],
        tuple(data["chunk_ids"]), float(data["ingested_at"]),
    )  # fmt: skip


def _record_dict(record: SourceRecord) -> dict[str, Any]:
    return {
        "path": record.path, "content_hash": record.content_hash, "recipe": record.recipe,
        "format": record.format, "chunk_ids": list(record.chunk_ids),
        "ingested_at": record.ingested_at,
    }  # fmt: skip


class MilvusStore:
    """Chunks in Milvus behind the store protocol; see the module docstring."""

    def __init__(
        self,
        uri: str,
        name: str,
        dim: int,
        *,
        token: str = "",
        where: str | None = None,
        index: str = "flat",
    ) -> None:
        self.dim = dim
        self.name = name
        self.ctl = CONTROL
        self._prefix = f"{name}/"  # of this collection's rows in the shared control collection
        self.where = f"{where or uri} (collection {name})"
        self._index = index
        self._gate = CallGate(f"the Milvus store at {self.where} is closed")
        self._write_lock = threading.Lock()
        self._last_batch = 0
        with self._errors("connecting"):
            self.client = MilvusClient(uri=uri, token=token, timeout=CALL_TIMEOUT_S)
        try:
            with self._errors("opening"):
                version = str(self.client.get_server_version(timeout=CALL_TIMEOUT_S))
                self.lite = version.startswith("milvus_lite")
                self._null_safe = self.lite or _at_least(version, (2, 5))
                keyword = self._null_safe
                self._ensure_control()
                if not self.client.has_collection(self.name, timeout=CALL_TIMEOUT_S):
                    self._create(keyword)
                self._check_schema()
                self._recover(only_mine=False)
        except BaseException:
            self.client.close()
            raise
        self.capabilities = frozenset({MANIFEST, KEYWORD} if self._keyword else {MANIFEST})

    # ---- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """pymilvus and gRPC failures as one-line StorageErrors (server down, timeouts)."""
        try:
            yield
        except (StorageError, InvalidInputError, CollectionError):
            raise
        except Exception as exc:  # MilvusException, grpc.RpcError, ConnectionError, …
            message = " ".join(str(getattr(exc, "message", "") or exc).split())[:300]
            raise StorageError(
                f"Milvus at {self.where} failed while {doing}: {message}; "
                "no partial write is visible, retry when the server is back"
            ) from exc

    @contextmanager
    def _operation(self, doing: str) -> Iterator[None]:
        with self._gate.call(), self._errors(doing):
            yield

    def _ensure_control(self) -> None:
        """The control collection, shared by every embedstack collection on the server."""
        client = self.client
        if client.has_collection(self.ctl, timeout=CALL_TIMEOUT_S):
            return
        ctl = client.create_schema(auto_id=False, enable_dynamic_field=False)
        ctl.add_field("key", DataType.VARCHAR, is_primary=True, max_length=MAX_VARCHAR)
        ctl.add_field("value", DataType.VARCHAR, max_length=MAX_VARCHAR)
        ctl.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field
        ctl_index = client.prepare_index_params()
        ctl_index.add_index("vector", index_type="FLAT", metric_type="L2")
        try:
            client.create_collection(self.ctl, schema=ctl, consistency_level="Session",
                                     timeout=CALL_TIMEOUT_S)  # fmt: skip
        except Exception:
            if not client.has_collection(self.ctl, timeout=CALL_TIMEOUT_S):
                raise
            return  # another process created it meanwhile
        client.create_index(self.ctl, ctl_index, timeout=CALL_TIMEOUT_S, sync=False)

    def _create(self, keyword: bool) -> None:
        client = self.client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("id", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("batch", DataType.INT64)
        text_options: dict[str, Any] = {"enable_analyzer": True} if keyword else {}
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR, **text_options)
        schema.add_field("meta", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field(KEYS_FIELD, DataType.JSON)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        index = client.prepare_index_params()
        if self._index == "hnsw":
            index.add_index("vector", index_type="HNSW", metric_type="IP",
                            params={"M": 32, "efConstruction": 200})  # fmt: skip
        else:
            index.add_index("vector", index_type="FLAT", metric_type="IP")
        if keyword:
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name="bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["text"],
                    output_field_names=["sparse"],
                )
            )
            index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        # (Indexes without pymilvus's wait, which sleeps 0.5 s each: loading waits anyway.)
        client.create_collection(self.name, schema=schema, consistency_level="Session",
                                 timeout=CALL_TIMEOUT_S)  # fmt: skip
        client.create_index(self.name, index, timeout=CALL_TIMEOUT_S, sync=False)

    def _check_schema(self) -> None:
        info = self.client.describe_collection(self.name, timeout=CALL_TIMEOUT_S)
        fields = {f["name"]: f for f in info["fields"]}
        if "vector" not in fields or "id" not in fields:
            raise CollectionError(f"{self.where} is not an embedstack collection")
        dim = int(fields["vector"].get("params", {}).get("dim", self.dim))
        if dim != self.dim:
            raise CollectionError(f"{self.where} holds {dim}-d vectors, not {self.dim}-d")
        self._keyword = "sparse" in fields
        for collection in (self.name, self.ctl):
            self.client.load_collection(collection, timeout=CALL_TIMEOUT_S)

    def _query(self, collection: str, expr: str, fields: list[str], **kw: Any) -> list[dict]:
        return list(
            self.client.query(
                collection, filter=expr, output_fields=fields, timeout=CALL_TIMEOUT_S, **kw
            )
        )

    # ---- the control rows --------------------------------------------------------------------

    def _control(self) -> tuple[tuple[tuple[str, str], ...], dict[int, _Txn]]:
        p = self._prefix
        rows = self._query(self.ctl, f'key == "{p}head" or key like "{p}txn:%"', ["key", "value"])
        token = tuple(
            sorted((r["key"][len(p) :], r["value"]) for r in rows if r["key"].startswith(p))
        )
        heads: dict[int, dict[str, Any]] = {}
        old: dict[int, list[int]] = {}
        for key, value in token:
            parts = key.split(":")
            if parts[0] != "txn":
                continue
            if len(parts) == 2:
                heads[int(parts[1])] = json.loads(value)
            else:
                old.setdefault(int(parts[1]), []).extend(json.loads(value))
        txns = {
            batch: _Txn(
                batch,
                data["state"],
                data["owner"],
                data["started"],
                data.get("source"),
                data.get("removed_source"),
                tuple(old.get(batch, ())),
            )  # fmt: skip
            for batch, data in heads.items()
        }
        return token, txns

    def _consistent(self, read: Any) -> Any:
        """Run `read(view)` so that no write changed state meanwhile (a seqlock over the control
        rows; every write changes them at each step that matters to readers)."""
        for attempt in range(READ_RETRIES):
            token, txns = self._control()
            result = read(_View(token, tuple(txns.values())))
            if self._control()[0] == token:
                return result
            time.sleep(min(0.002 * (attempt + 1), 0.05))
        raise StorageError(f"{self.where} kept changing during a read; try again")

    def _put_ctl(self, rows: list[tuple[str, str]]) -> None:
        data = [{"key": self._prefix + k, "value": v, "vector": [0.0, 0.0]} for k, v in rows]
        self.client.upsert(self.ctl, data, timeout=CALL_TIMEOUT_S)

    def _txn_value(self, txn: _Txn, state: str) -> str:
        return json.dumps(
            {"state": state, "owner": txn.owner, "started": txn.started, "source": txn.source,
             "removed_source": txn.removed_source},
            ensure_ascii=False,
        )  # fmt: skip

    # ---- writes --------------------------------------------------------------------------------

    def _new_batch(self, rows: int) -> int:
        batch = max(time.time_ns(), self._last_batch + 1)
        self._last_batch = batch + rows
        return batch

    def _write(
        self,
        doing: str,
        old: Sequence[int],
        rows: list[dict[str, Any]],
        *,
        source: SourceRecord | None = None,
        removed_source: str | None = None,
    ) -> None:
        """One crash-safe write (see the module docstring); the write lock is held."""
        batch = self._new_batch(len(rows))
        txn = _Txn(
            batch, "pending", _OWNER, time.time(),
            _record_dict(source) if source else None, removed_source, tuple(old),
        )  # fmt: skip
        key = f"txn:{batch}"
        parts = [
            (f"{key}:old:{n}", json.dumps(list(old[start : start + OLD_PER_PART])))
            for n, start in enumerate(range(0, len(old), OLD_PER_PART))
        ]
        self._put_ctl([(key, self._txn_value(txn, "pending")), *parts])
        for n, row in enumerate(rows):
            row["pk"], row["batch"] = batch + n, batch
        for start in range(0, len(rows), 1_000):
            self.client.insert(self.name, rows[start : start + 1_000], timeout=CALL_TIMEOUT_S)
        self._put_ctl([(key, self._txn_value(txn, "committed"))])
        self._finish(txn, [key, *(k for k, _ in parts)])

    def _finish(self, txn: _Txn, keys: list[str]) -> None:
        """Roll a committed transaction forward: manifest, replaced rows, head, txn rows."""
        if txn.source is not None:
            self._put_ctl([(f"src:{txn.source['path']}", json.dumps(txn.source))])
        if txn.removed_source is not None:
            self._delete_ctl([f"src:{txn.removed_source}"])
        for start in range(0, len(txn.old), OLD_PER_PART):
            self.client.delete(self.name, ids=list(txn.old[start : start + OLD_PER_PART]),
                               timeout=CALL_TIMEOUT_S)  # fmt: skip
        self._put_ctl([("head", str(txn.batch))])
        self._delete_ctl(keys)

    def _delete_ctl(self, keys: list[str]) -> None:
        self.client.delete(self.ctl, ids=[self._prefix + k for k in keys], timeout=CALL_TIMEOUT_S)

    def _abort(self, txn: _Txn, keys: list[str]) -> None:
        """Roll a pending transaction back: its rows go, then its control rows."""
        self.client.delete(self.name, filter=f"batch == {txn.batch}", timeout=CALL_TIMEOUT_S)
        self._put_ctl([("head", str(txn.batch))])
        self._delete_ctl(keys)

    def _recover(self, only_mine: bool) -> int:
        """Finish or undo transactions a crash (or a lost server) left open; how many."""
        token, txns = self._control()
        done = 0
        for batch, txn in sorted(txns.items()):
            keys = [k for k, _ in token if k == f"txn:{batch}" or k.startswith(f"txn:{batch}:")]
            if txn.state == "committed":
                self._finish(txn, keys)
            elif txn.owner == _OWNER:
                self._abort(txn, keys)
            elif only_mine:
                continue
            elif not _pid_alive(txn.owner) or time.time() - txn.started > STALE_TXN_S:
                self._abort(txn, keys)
            else:
                continue
            done += 1
        return done

    def _rows(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> list[dict[str, Any]]:
        """Checked rows to insert; every problem is found before anything is written."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise InvalidInputError(
                f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}"
            )
        if not (len(ids) == len(texts) == len(metadatas)):
            raise InvalidInputError("ids, texts and metadata must have the same length")
        if len(set(ids)) != len(ids) or any(not i for i in ids):
            raise InvalidInputError("ids must be unique and non-empty")
        rows = []
        for id_, text, meta, vector in zip(ids, texts, metadatas, vectors, strict=True):
            encoded = json.dumps(dict(meta), ensure_ascii=False)
            for what, value in (("id", id_), ("text", text), ("metadata", encoded)):
                if len(value.encode("utf-8")) > MAX_VARCHAR:
                    raise InvalidInputError(
                        f"the {what} of chunk {id_[:80]!r} is over Milvus's {MAX_VARCHAR:,} bytes"
                    )
            rows.append(
                {"id": id_, "text": text, "meta": encoded, KEYS_FIELD: filter_keys(meta),
                 "vector": vector.tolist()}
            )  # fmt: skip
        return rows

    def _pks_of(self, ids: Sequence[str], view: _View) -> tuple[list[int], set[str]]:
        """Primary keys of the visible rows holding `ids` (and which ids they are)."""
        pks: list[int] = []
        found: set[str] = set()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 1_000):
            expr = self._visible(f"id in {json.dumps(unique[start : start + 1_000])}", view)
            for row in self._query(self.name, expr, ["pk", "id"]):
                pks.append(int(row["pk"]))
                found.add(row["id"])
        return pks, found

    @contextmanager
    def _writing(self, doing: str) -> Iterator[None]:
        with self._operation(doing), self._write_lock:
            self._recover(only_mine=True)
            yield

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> None:
        """Insert or replace rows by id; readers see all of it or none of it."""
        rows = self._rows(ids, texts, metadatas, vectors)
        with self._writing("writing rows"):
            old, _ = self._pks_of(ids, self._view())
            self._write("writing rows", old, rows)

    def delete(self, ids: Sequence[str]) -> int:
        with self._writing("deleting rows"):
            old, found = self._pks_of(ids, self._view())
            if old:
                self._write("deleting rows", old, [])
            return len(found)

    def replace_source(
        self,
        source: SourceRecord,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: np.ndarray,
    ) -> int:
        """Swap a file's chunks and its manifest entry; readers see the old file or the new."""
        rows = self._rows(source.chunk_ids, texts, metadatas, vectors)
        with self._writing(f"writing {source.path}"):
            view = self._view()
            previous = self._source(source.path, view)
            stale = [*(previous.chunk_ids if previous else ()), *source.chunk_ids]
            old, _ = self._pks_of(stale, view)
            self._write(f"writing {source.path}", old, rows, source=source)
        return len(previous.chunk_ids) if previous else 0

    def replace_sources(self, files: Sequence[FileRows]) -> list[int]:
        """File by file: Milvus has no transaction across files (each stays all or nothing)."""
        return [self.replace_source(f.source, f.texts, f.metadatas, f.vectors) for f in files]

    def remove_source(self, path: str) -> int:
        with self._writing(f"removing {path}"):
            view = self._view()
            previous = self._source(path, view)
            if previous is None:
                return 0
            old, found = self._pks_of(previous.chunk_ids, view)
            self._write(f"removing {path}", old, [], removed_source=path)
            return len(found)

    # ---- reads -------------------------------------------------------------------------------

    def _view(self) -> _View:
        token, txns = self._control()
        return _View(token, tuple(txns.values()))

    def _visible(self, expr: str | None, view: _View) -> str:
        parts = [p for p in (view.hide(), expr) if p]
        return " and ".join(f"({p})" for p in parts) if parts else "pk >= 0"

    def _where(self, where: FilterNode | None) -> str | bool:
        if where is None or where == MATCH_ALL:
            return True
        return compile_milvus(where, self._null_safe)

    def count(self, where: FilterNode | None = None) -> int:
        expr = self._where(where)
        if expr is False:
            return 0
        with self._operation("counting"):

            def read(view: _View) -> int:
                found = self._query(
                    self.name, self._visible(None if expr is True else expr, view), ["count(*)"]
                )
                return int(found[0]["count(*)"]) if found else 0

            return int(self._consistent(read))

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        unique = list(dict.fromkeys(ids))
        if not unique:
            return []
        with self._operation("reading rows"):

            def read(view: _View) -> dict[str, Chunk]:
                found: dict[str, tuple[int, Chunk]] = {}
                for start in range(0, len(unique), 1_000):
                    expr = self._visible(f"id in {json.dumps(unique[start : start + 1_000])}", view)
                    for row in self._query(self.name, expr, ["pk", "id", "text", "meta"]):
                        pk = int(row["pk"])
                        if row["id"] not in found or found[row["id"]][0] < pk:
                            chunk = Chunk(row["id"], row["text"], json.loads(row["meta"]))
                            found[row["id"]] = (pk, chunk)
                return {i: chunk for i, (_, chunk) in found.items()}

            by_id = self._consistent(read)
        return [by_id[i] for i in unique if i in by_id]

    def ids(self, where: FilterNode | None = None) -> list[str]:
        expr = self._where(where)
        if expr is False:
            return []
        with self._operation("listing ids"):

            def read(view: _View) -> list[str]:
                rows: list[tuple[int, str]] = []
                last = -1
                base = None if expr is True else expr
                while True:  # pages by primary key: no offset limit, no iterator state
                    page_expr = self._visible(f"pk > {last}", view)
                    if base:
                        page_expr = f"{page_expr} and ({base})"
                    page = self._query(self.name, page_expr, ["pk", "id"], limit=PAGE)
                    rows.extend((int(r["pk"]), r["id"]) for r in page)
                    if len(page) < PAGE:
                        break
                    last = max(int(r["pk"]) for r in page)
                rows.sort()
                return list(dict.fromkeys(i for _, i in rows))

            return list(self._consistent(read))

    def dense(self, queries: np.ndarray, k: int, where: FilterNode | None = None) -> list[Scored]:
        """Top-k (id, cosine) per query vector; the filter runs inside Milvus's search, so k
        hits come back whenever k rows match."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise InvalidInputError(
                f"query vectors must have dimension {self.dim}, got shape {queries.shape}"
            )
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        k = min(k, MAX_TOPK)
        expr = self._where(where)
        if expr is False or not len(queries):
            return [[] for _ in queries]
        with self._operation("searching"):

            def read(view: _View) -> list[Scored]:
                found = self.client.search(
                    self.name,
                    data=queries.tolist(),
                    anns_field="vector",
                    limit=k,
                    filter=self._visible(None if expr is True else expr, view),
                    output_fields=["id"],
                    search_params={"metric_type": "IP"},
                    timeout=CALL_TIMEOUT_S,
                )
                return [_scored(hits, lambda d: float(d)) for hits in found]

            return list(self._consistent(read))

    def keyword(self, query: str, k: int, where: FilterNode | None = None) -> Scored:
        """Top-k (id, BM25 score) from Milvus's BM25 function, among the rows `where` lets
        through."""
        if not self._keyword:
            raise InvalidInputError(f"{self.where} has no keyword index (Milvus before 2.5)")
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        expr = self._where(where)
        if expr is False or not query.strip():
            return []
        with self._operation("searching"):

            def read(view: _View) -> Scored:
                found = self.client.search(
                    self.name,
                    data=[query],
                    anns_field="sparse",
                    limit=min(k, MAX_TOPK),
                    filter=self._visible(None if expr is True else expr, view),
                    output_fields=["id"],
                    search_params={"metric_type": "BM25"},
                    timeout=CALL_TIMEOUT_S,
                )
                hits = _scored(found[0], lambda d: abs(float(d)))  # Lite reports -score
                return [(i, s) for i, s in hits if s > 0]

            return list(self._consistent(read))

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        unique = list(dict.fromkeys(ids))
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if not unique:
            return out
        with self._operation("reading vectors"):

            def read(view: _View) -> dict[str, np.ndarray]:
                found: dict[str, tuple[int, np.ndarray]] = {}
                for start in range(0, len(unique), 1_000):
                    expr = self._visible(f"id in {json.dumps(unique[start : start + 1_000])}", view)
                    for row in self._query(self.name, expr, ["pk", "id", "vector"]):
                        pk = int(row["pk"])
                        if row["id"] not in found or found[row["id"]][0] < pk:
                            found[row["id"]] = (pk, np.asarray(row["vector"], dtype=np.float32))
                return {i: v for i, (_, v) in found.items()}

            by_id = self._consistent(read)
        for row, id_ in enumerate(ids):
            if id_ in by_id:
                out[row] = by_id[id_]
        return out

    # ---- the manifest --------------------------------------------------------------------------

    def _source(self, path: str, view: _View) -> SourceRecord | None:
        overlay = view.source_overlay()
        if path in overlay:
            entry = overlay[path]
            return _record(entry) if entry else None
        key = json.dumps(f"{self._prefix}src:{path}", ensure_ascii=False)
        rows = self._query(self.ctl, f"key == {key}", ["value"])
        return _record(json.loads(rows[0]["value"])) if rows else None

    def source(self, path: str) -> SourceRecord | None:
        with self._operation("reading the manifest"):
            found: SourceRecord | None = self._consistent(lambda view: self._source(path, view))
            return found

    def sources(self) -> list[SourceRecord]:
        with self._operation("reading the manifest"):

            def read(view: _View) -> list[SourceRecord]:
                entries: dict[str, dict[str, Any] | None] = {}
                start = self._prefix + "src:"
                last = ""
                while True:
                    page = self._query(
                        self.ctl, f'key like "{start}%" and key > {json.dumps(last)}',
                        ["key", "value"], limit=PAGE,
                    )  # fmt: skip
                    for row in page:
                        if row["key"].startswith(start):
                            entries[row["key"][len(start) :]] = json.loads(row["value"])
                    if len(page) < PAGE:
                        break
                    last = max(row["key"] for row in page)
                entries.update(view.source_overlay())
                return [_record(e) for p in sorted(entries) if (e := entries[p]) is not None]

            return list(self._consistent(read))

    # ---- checks and closing --------------------------------------------------------------------

    def check(self) -> list[str]:
        """Open transactions, ids stored twice, and manifest entries naming missing chunks."""
        problems: list[str] = []
        with self._operation("checking"):
            open_txns = self._open_txns()
            if open_txns:
                problems.append(f"{len(open_txns)} writes are unfinished (recovered on next open)")
        ids = self.ids()
        if len(ids) != self.count():
            problems.append(f"{self.count() - len(ids)} chunk ids are stored more than once")
        stored = set(ids)
        for record in self.sources():
            missing = [c for c in record.chunk_ids if c not in stored]
            if missing:
                problems.append(f"manifest entry {record.path} names {len(missing)} missing chunks")
        return problems

    def _open_txns(self) -> list[_Txn]:
        """Unfinished writes, read again a few times before they count: a Milvus server can show
        the control rows of a write that just finished for a moment after its delete returned."""
        open_txns: list[_Txn] = []
        for attempt in range(CHECK_RETRIES):
            busy = self._write_lock.locked()  # this process's write in progress is not a problem
            open_txns = [t for t in self._view().txns if t.owner != _OWNER or not busy]
            if not open_txns:
                break
            time.sleep(0.05 * (attempt + 1))
        return open_txns

    def close(self) -> None:
        """Close once the calls in progress in other threads have finished."""
        if self._gate.close():
            with contextlib.suppress(Exception):
                self.client.close()


def _scored(hits: Any, score: Any) -> Scored:
    out: Scored = []
    seen: set[str] = set()
    for hit in hits:
        entity = hit.get("entity", {}) if isinstance(hit, Mapping) else hit.entity
        id_ = str(entity["id"] if isinstance(entity, Mapping) else entity.id)
        distance = hit["distance"] if isinstance(hit, Mapping) else hit.distance
        if id_ not in seen:
            seen.add(id_)
            out.append((id_, score(distance)))
    return out


def _at_least(version: str, wanted: tuple[int, int]) -> bool:
    numbers = re.findall(r"\d+", version)
    return len(numbers) >= 2 and (int(numbers[0]), int(numbers[1])) >= wanted
