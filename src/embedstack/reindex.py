"""`reindex`: re-embed a collection with another model, then swap it in atomically.

A new model changes every vector (and perhaps their dimension), so nothing can be updated in
place. The rows are copied through the store's own calls into a new collection in a sibling
folder (`kb.reindex-<pid>-<random>`, same file system) and embedded there with the new model.
Until the swap the old folder is only read, so it keeps serving; a failure, Ctrl-C included,
removes the new folder and leaves the old one as it was.

The swap exchanges the two folders in one step (Linux `renameat2(RENAME_EXCHANGE)`), so at every
instant the path holds the whole old collection or the whole new one. Where that call is missing
(another OS, a file system without it), two renames are used: the old folder is moved aside to
`kb.reindex-old-<pid>-<random>`, then the new one into place. A crash between the two leaves no
folder at the path; the next `reindex` renames the old one back (the rule: an unfinished swap
did not happen) and removes the folders that runs killed before they could clean up left.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedstack.collection import CACHE_FILE, canonical_model_name
from embedstack.config import CONFIG_FILE, CollectionConfig
from embedstack.errors import (
    CollectionError,
    CollectionNotFoundError,
    CorruptCollectionError,
    InvalidInputError,
)
from embedstack.ingest.pipeline import embedding_text, recipe_context_tokens
from embedstack.ingest.tokens import TokenCounter, token_budget
from embedstack.models import CATALOG, EmbeddingModel, load_model
from embedstack.progress import progress_bar, status
from embedstack.rows import check_whole_number
from embedstack.store.base import MANIFEST, IngestStore
from embedstack.store.factory import open_store
from embedstack.store.local import DB_FILE
from embedstack.types import Chunk, SourceRecord

BATCH_ROWS = 256  # rows embedded together before they are written (ingest's batch_chunks)
READ_ROWS = 1024  # rows read at a time to fingerprint the old collection
# The collection's own files, rebuilt in the new folder (the embedding cache is dropped: it
# holds the old model's vectors). Anything else there, such as the server's uploaded
# `files/`, is carried over.
STORE_FILES = re.compile(
    "|".join(map(re.escape, (DB_FILE, CACHE_FILE, CONFIG_FILE)))
    + r"|vectors-\d+\.(faiss|f32)|index-\d+-(\d+-\d+|trained)\.faiss"
)
RENAME_EXCHANGE = 2  # <linux/fs.h>
AT_FDCWD = -100  # paths relative to the working directory
UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


@dataclass(frozen=True)
class ReindexReport:
    """What `reindex` did. `long_chunks`: chunks longer than the new model reads, cut when
    embedded; ingest their files again (the recipe changes with the model) to re-chunk them."""

    path: str
    old_model: str
    new_model: str
    old_dim: int
    new_dim: int
    rows: int
    sources: int
    long_chunks: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def reindex(
    path: str | Path,
    model: str | EmbeddingModel,
    *,
    backend: str | None = None,
    batch_size: int = 32,
    force: bool = False,
    show_progress: bool = False,
) -> ReindexReport:
    """Re-embed the collection in `path` with `model` and swap the result in atomically.

    `model`: a catalog name, a sentence-transformers folder or `.onnx` path, or a loaded
    model. Rows keep their ids, texts and metadata, and ingested files their manifest entries
    (a later `ingest` still skips unchanged files); chunks of ingested files are embedded
    with their context header, as ingest does. The model the collection already has is
    refused unless `force` (its files changed). On any error the collection is left as it was.
    A process that has the collection open keeps the old, deleted files until it reopens it.
    """
    started = time.perf_counter()
    check_whole_number("batch_size", batch_size, 1)
    folder = _collection_folder(path)
    config = CollectionConfig.read(folder)
    name = _model_name(model, backend)
    if name == config.model and not force:
        raise CollectionError(
            f"{path} is already embedded with {name!r}: nothing to do "
            "(force re-embeds it anyway, e.g. after the model's files changed)"
        )
    if config.model in CATALOG and CATALOG[config.model].modality != "text":
        raise CollectionError(_NOT_TEXT.format(path, CATALOG[config.model].modality))
    encoder = _load(model, backend, show_progress)
    if encoder.modality != "text":
        raise CollectionError(_NOT_TEXT.format(name, encoder.modality))
    new_config = dataclasses.replace(config, model=name, dim=encoder.dim)
    build = _new_folder(folder)
    try:
        counts = _rebuild(folder, config, build, new_config, encoder, batch_size, show_progress)
        _carry_over(folder, build)
        old_contents = swap_folders(folder, build)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    shutil.rmtree(old_contents, ignore_errors=True)
    return ReindexReport(
        str(path), config.model, name, config.dim, encoder.dim, counts.rows, counts.sources,
        counts.long_chunks, time.perf_counter() - started,
    )  # fmt: skip


_NOT_TEXT = (
    "reindex re-embeds text; {} is about {}: ingest the files into a new collection made "
    "with the new model instead"
)


def _model_name(model: str | EmbeddingModel, backend: str | None) -> str:
    """The name `collection.toml` records, as `Collection.open` would (a path: absolute)."""
    if isinstance(model, str):
        return canonical_model_name(model) or model
    if not hasattr(model, "encode_document"):
        raise InvalidInputError(
            f"model must be a model name, a path or a loaded model, got {type(model).__name__}"
        )
    if backend is not None:
        raise InvalidInputError("backend applies to a model name, not to a loaded model")
    return model.name


def _load(model: str | EmbeddingModel, backend: str | None, show: bool) -> EmbeddingModel:
    """The new encoder, used without an embedding cache: after a model's files changed (same
    name, `force`), a cache would hand back the old model's vectors."""
    if not isinstance(model, str):
        return model
    with status(f"Loading {model}…", enabled=show):
        return load_model(model, backend)


# ---- folders -----------------------------------------------------------------------------------


def _collection_folder(path: str | Path) -> Path:
    """The collection's real folder: behind a symlink, the target is what gets swapped."""
    if not isinstance(path, str | Path):
        raise InvalidInputError(f"path must be a folder path, got {type(path).__name__}")
    folder = Path(path).expanduser().resolve()
    _tidy(folder)
    if not (folder / CONFIG_FILE).is_file():
        raise CollectionNotFoundError(f"no collection at {path} (no {CONFIG_FILE} there)")
    return folder


def _tidy(folder: Path) -> None:
    """After a reindex that was killed: put back an old collection an unfinished two-rename
    swap left aside (the old one wins), and remove the folders of runs no longer alive."""
    pattern = re.compile(re.escape(folder.name) + r"\.reindex-(old-)?(\d+)-[0-9a-f]+")
    if not folder.parent.is_dir():
        return
    leftovers = [
        (entry, match[1] is not None)
        for entry in sorted(folder.parent.iterdir())
        if (match := pattern.fullmatch(entry.name)) and not _alive(int(match[2]))
    ]
    for entry, aside in leftovers:
        if aside and not folder.exists() and (entry / CONFIG_FILE).is_file():
            os.rename(entry, folder)
        else:
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether a process with this id runs here (anything unsure counts as alive)."""
    if os.name != "posix" or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


def _new_folder(folder: Path) -> Path:
    """An empty sibling folder (same file system, so the swap is a rename) with the old mode."""
    build = folder.with_name(f"{folder.name}.reindex-{os.getpid()}-{secrets.token_hex(4)}")
    build.mkdir()
    os.chmod(build, stat.S_IMODE(folder.stat().st_mode))
    return build


def _carry_over(folder: Path, build: Path) -> None:
    """Bring into the new folder what is not the collection's own files (uploaded files)."""
    for entry in folder.iterdir():
        if STORE_FILES.match(entry.name):
            continue
        target = build / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, target)


def _link_or_copy(source: str | Path, target: str | Path) -> None:
    """A hard link: instant and no extra space, and the old folder's name is deleted later."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def swap_folders(folder: Path, build: Path) -> Path:
    """Put `build` at `folder`'s path; returns where the old contents are now, to delete.

    One atomic exchange where the OS can; else two renames, undone if the second fails (see
    the module docstring for a crash between them).
    """
    if _exchange(folder, build):
        _sync_folder(folder.parent)
        return build
    aside = build.with_name(build.name.replace(".reindex-", ".reindex-old-", 1))
    os.rename(folder, aside)
    try:
        os.rename(build, folder)
    except BaseException:
        os.rename(aside, folder)
        raise
    _sync_folder(folder.parent)
    return aside


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step; False where the OS or the file system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE):
        code = ctypes.get_errno()
        if code in UNSUPPORTED:
            return False
        raise OSError(code, os.strerror(code), str(first), None, str(second))
    return True


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """glibc's renameat2 (2.28+), or None (another libc, another OS)."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


def _sync_folder(folder: Path) -> None:
    """Make the renames durable (a power cut after this keeps the new collection)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


# ---- copying -----------------------------------------------------------------------------------


@dataclass
class _Counts:
    rows: int = 0
    sources: int = 0
    long_chunks: int = 0


@dataclass
class _Unit:
    """Rows written together: one ingested file (through the manifest), or other rows."""

    source: SourceRecord | None
    chunks: list[Chunk]
    embed_texts: list[str]


def _rebuild(
    folder: Path,
    config: CollectionConfig,
    build: Path,
    new_config: CollectionConfig,
    encoder: EmbeddingModel,
    batch_size: int,
    show_progress: bool,
) -> _Counts:
    """Copy every row of the old collection into a new one in `build`, embedded with `encoder`.

    The old one is fingerprinted before and after: a write from another process meanwhile
    would be lost by the swap, so it fails the run instead.
    """
    new_config.write(build)
    with (
        contextlib.closing(open_store(folder, config)) as old,
        contextlib.closing(open_store(build, new_config)) as new,
    ):
        before = _fingerprint(old)
        counts = _copy(old, new, encoder, batch_size, show_progress)
        if _fingerprint(old) != before:
            raise CollectionError(
                f"{folder} changed while it was re-embedded (another process wrote to it); "
                "it was left as it is: run reindex again once the writes are done"
            )
        if new.count() != old.count():
            raise CorruptCollectionError(
                f"the re-embedded copy of {folder} has {new.count()} rows, not {old.count()}; "
                f"it was left as it is: run `embedstack check {folder}`"
            )
    return counts


def _copy(
    old: IngestStore, new: IngestStore, encoder: EmbeddingModel, batch_size: int, show: bool
) -> _Counts:
    counter = TokenCounter.for_model(encoder)
    budget = token_budget(encoder, counter)
    counts = _Counts()
    with progress_bar(old.count(), "Re-embedding", enabled=show, unit="rows") as advance:
        for group in _groups(_units(old, counter)):
            texts = [text for unit in group for text in unit.embed_texts]
            counts.long_chunks += sum(tokens > budget for tokens in counter.count(texts))
            vectors = _embed(encoder, texts, batch_size, advance)
            offset = 0
            for unit in group:
                rows = len(unit.chunks)
                _write(new, unit, vectors[offset : offset + rows])
                offset += rows
                counts.rows += rows
                counts.sources += unit.source is not None
    return counts


def _units(store: IngestStore, counter: TokenCounter) -> Iterator[_Unit]:
    """The stored rows, oldest first: each ingested file whole, the other rows in runs."""
    sources = store.sources() if MANIFEST in store.capabilities else []
    owner = {id_: record for record in sources for id_ in record.chunk_ids}
    done: set[str] = set()
    loose: list[str] = []
    for id_ in store.ids():
        record = owner.get(id_)
        if record is None:
            loose.append(id_)
        if loose and (record is not None or len(loose) >= BATCH_ROWS):
            yield _loose_rows(store, loose)
            loose = []
        if record is not None and record.path not in done:
            done.add(record.path)
            yield _file_rows(store, record, counter)
    if loose:
        yield _loose_rows(store, loose)
    for record in sources:  # none of its chunks is stored: _file_rows says so
        if record.path not in done:
            yield _file_rows(store, record, counter)


def _loose_rows(store: IngestStore, ids: list[str]) -> _Unit:
    """Rows added with `add`: embedded from their bare text, as `add` does."""
    chunks = store.get(ids)
    return _Unit(None, chunks, [chunk.text for chunk in chunks])


def _file_rows(store: IngestStore, record: SourceRecord, counter: TokenCounter) -> _Unit:
    """An ingested file's chunks, embedded under the context header ingest gives them."""
    chunks = store.get(record.chunk_ids)
    if len(chunks) != len(record.chunk_ids):
        raise CorruptCollectionError(
            f"the manifest entry of {record.path} lists {len(record.chunk_ids) - len(chunks)} "
            "chunks that are not stored: run `embedstack check`"
        )
    tokens = recipe_context_tokens(record.recipe)
    texts = [embedding_text(chunk.text, chunk.metadata, counter, tokens) for chunk in chunks]
    return _Unit(record, chunks, texts)


def _groups(units: Iterable[_Unit]) -> Iterator[list[_Unit]]:
    """Units gathered up to BATCH_ROWS rows: one encoder run for many small files is faster."""
    group: list[_Unit] = []
    rows = 0
    for unit in units:
        group.append(unit)
        rows += len(unit.chunks)
        if rows >= BATCH_ROWS:
            yield group
            group, rows = [], 0
    if group:
        yield group


def _embed(
    encoder: EmbeddingModel, texts: list[str], batch_size: int, advance: Callable[[int], None]
) -> np.ndarray:
    vectors = np.empty((len(texts), encoder.dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        piece = texts[start : start + batch_size]
        vectors[start : start + len(piece)] = encoder.encode_document(piece, batch_size=batch_size)
        advance(len(piece))
    return vectors


def _write(store: IngestStore, unit: _Unit, vectors: np.ndarray) -> None:
    texts = [chunk.text for chunk in unit.chunks]
    metadatas = [chunk.metadata for chunk in unit.chunks]
    if unit.source is None:
        store.upsert([chunk.id for chunk in unit.chunks], texts, metadatas, vectors)
    else:  # the manifest entry as it was: same content hash and recipe, so ingest skips it
        store.replace_source(unit.source, texts, metadatas, vectors)


def _fingerprint(store: IngestStore) -> str:
    """A digest of every row's id, text and metadata, and of the manifest (not the vectors:
    those are made again anyway)."""
    digest = hashlib.sha256()
    ids = store.ids()
    for start in range(0, len(ids), READ_ROWS):
        for chunk in store.get(ids[start : start + READ_ROWS]):
            digest.update(
                json.dumps([chunk.id, chunk.text, chunk.metadata], sort_keys=True).encode()
            )
    if MANIFEST in store.capabilities:
        for record in sorted(store.sources(), key=lambda record: record.path):
            digest.update(json.dumps(dataclasses.astuple(record)).encode())
    return digest.hexdigest()
