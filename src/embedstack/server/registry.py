"""The collections a server serves: one per sub-folder of `--collections`, opened once.

A `Collection` is safe to share between threads, so each is opened on first use and kept.
Names are checked before they touch the file system (no `..`, no separators).
"""

from __future__ import annotations

import re
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedstack.collection import Collection
from embedstack.config import CONFIG_FILE, CollectionConfig
from embedstack.errors import (
    CollectionError,
    CollectionNotFoundError,
    InvalidInputError,
    StorageError,
)
from embedstack.models import CATALOG, EmbeddingModel, find_spec
from embedstack.server.errors import HTTPError
from embedstack.server.models import ModelPool
from embedstack.store.base import MANIFEST

NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
UPLOADS = "files"  # sub-folder of a collection that keeps uploaded files
MAX_NAME_BYTES = 200  # of an uploaded file's name, in UTF-8
OPENING, CREATING, DELETING = "being opened", "being created", "being deleted"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise HTTPError(
            422, f"invalid collection name {name!r}: 1-64 letters, digits, '_', '-' or '.', "
            "not starting with '.'", "invalid_input", "name",
        )  # fmt: skip
    return name


class CollectionRegistry:
    def __init__(self, root: Path, models: ModelPool) -> None:
        self.root = root
        self._models = models
        self._open: dict[str, Collection] = {}
        self._busy: Counter[str] = Counter()  # ingest jobs running per collection
        # Names being opened, created or deleted: the slow work (a model load, removing a
        # folder) runs outside the lock while the name stays reserved here.
        self._pending: dict[str, str] = {}
        self._changed = threading.Condition(threading.Lock())

    def names(self) -> list[str]:
        """The collections on disk, less those being created or deleted (not there yet)."""
        if not self.root.is_dir():
            return []
        with self._changed:
            passing = {name for name, doing in self._pending.items() if doing != OPENING}
        return sorted(
            p.name
            for p in self.root.iterdir()
            if NAME.fullmatch(p.name) and p.name not in passing and (p / CONFIG_FILE).is_file()
        )

    def folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def get(self, name: str) -> Collection:
        """The open collection; opened (outside the lock) on first use. A name being created or
        deleted is not found; a name another request is opening is waited for."""
        folder = self.folder(name)
        with self._changed:
            while True:
                collection = self._open.get(name)
                if collection is not None:
                    return collection
                doing = self._pending.get(name)
                if doing is None:
                    break
                if doing != OPENING:
                    raise CollectionNotFoundError(f"no collection named {name!r} (it is {doing})")
                self._changed.wait()
            if not (folder / CONFIG_FILE).is_file():
                raise CollectionNotFoundError(f"no collection named {name!r}")
            self._pending[name] = OPENING

        def open_existing() -> Collection:
            config = CollectionConfig.read(folder)
            shared = self._shared(config.model) if config.model in CATALOG else None
            return Collection.open(folder, shared, create=False)

        return self._publish(name, open_existing)

    def create(self, name: str, model: str | None, index: str | None) -> Collection:
        """The name is reserved under the lock; the model loads and the folder is made outside
        it, so other requests never wait for a model to load."""
        folder = self.folder(name)
        with self._changed:
            doing = self._pending.get(name)
            if doing in (CREATING, DELETING):
                raise HTTPError(409, f"a collection named {name!r} is {doing}; try again later",
                                "collection_exists", "name")  # fmt: skip
            if name in self._open or folder.exists():
                raise HTTPError(
                    409, f"a collection named {name!r} exists", "collection_exists", "name"
                )
            self._pending[name] = CREATING

        def make() -> Collection:
            # A catalog name only: 404 for anything else (find_spec says which names exist).
            shared = self._shared(find_spec(model).name) if model else self._models.get().model
            self.root.mkdir(parents=True, exist_ok=True)
            return Collection.open(folder, shared, index=index)

        return self._publish(name, make)

    def _publish(self, name: str, open_: Callable[[], Collection]) -> Collection:
        """`open_()` for a name reserved in `_pending`, outside the lock; then the collection
        is published, or on failure the name is freed."""
        try:
            collection = open_()
        except BaseException:
            self._settle(name)
            raise
        self._settle(name, collection)
        return collection

    def _settle(self, name: str, collection: Collection | None = None) -> None:
        """End `name`'s opening, creating or deleting, publishing the collection if any."""
        with self._changed:
            del self._pending[name]
            if collection is not None:
                self._open[name] = collection
            self._changed.notify_all()

    def _shared(self, model: str) -> EmbeddingModel | str:
        """A text model from the server's pool (shared with /v1/embeddings and its batching);
        an image or sequence model by name, which the collection loads for itself."""
        if CATALOG[model].modality != "text":
            CATALOG[model].require_installed()
            return model
        return self._models.get(model).model

    def delete(self, name: str) -> None:
        """Refused (409) while an ingest or analysis holds the collection; the folder is removed
        outside the lock, the name staying reserved (not found, not creatable) until it is gone."""
        folder = self.folder(name)
        with self._changed:
            while self._pending.get(name) == OPENING:
                self._changed.wait()
            doing = self._pending.get(name)
            if doing == DELETING:
                raise CollectionNotFoundError(f"no collection named {name!r} (it is {doing})")
            if doing == CREATING:
                raise CollectionError(f"{name!r} is {doing}; delete it afterwards")
            if self._busy[name]:
                raise CollectionError(
                    f"{name!r} is in use (an ingest or analysis is running); delete it afterwards"
                )
            if not (folder / CONFIG_FILE).is_file():
                raise CollectionNotFoundError(f"no collection named {name!r}")
            collection = self._open.pop(name, None)
            self._pending[name] = DELETING
        try:
            if collection is not None:
                collection.close()
            shutil.rmtree(folder)
        except OSError as exc:  # the message names no server path
            message = exc.strerror or type(exc).__name__
            raise StorageError(f"cannot delete {name!r}: {message}") from exc
        finally:
            self._settle(name)

    def info(self, name: str) -> dict[str, Any]:
        collection = self.get(name)
        info = {"name": name, **collection.info()}
        info.pop("path", None)  # the server's file system is not the client's business
        if MANIFEST in collection.capabilities:
            sources = collection.sources()
            info["files"] = len(sources)
            info["formats"] = dict(Counter(s.format for s in sources))
        return info

    def uploads(self, name: str) -> Path:
        return self.folder(name) / UPLOADS

    def mark_busy(self, name: str, busy: bool) -> None:
        """Count an ingest or analysis using `name` (delete is refused while one runs). Marking
        a collection deleted since it was looked up is a 404 and marks nothing."""
        with self._changed:
            if busy:
                if name not in self._open:
                    raise CollectionNotFoundError(f"no collection named {name!r} (it was deleted)")
                self._busy[name] += 1
            elif self._busy[name] > 1:
                self._busy[name] -= 1
            else:
                self._busy.pop(name, None)

    def acquire(self, name: str) -> Collection:
        """The collection, marked busy (release it with `mark_busy(name, False)`)."""
        while True:
            collection = self.get(name)
            with self._changed:
                if self._open.get(name) is collection:
                    self._busy[name] += 1
                    return collection
            # deleted (and perhaps made again) between the two steps: look it up again

    def close(self) -> None:
        with self._changed:
            for collection in self._open.values():
                collection.close()
            self._open.clear()


def safe_file_name(name: str | None) -> str:
    """An uploaded file's name, reduced to its last part with no control characters."""
    base = re.sub(r"[\x00-\x1f\x7f/\\]", "_", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = base.strip().lstrip(".")
    if not base:
        raise InvalidInputError(f"an uploaded file has no usable name ({name!r})")
    if len(base.encode()) <= MAX_NAME_BYTES:
        return base
    # File systems count a name's bytes (255 at most), not its characters; keep the extension,
    # which says the format.
    stem, dot, extension = base.rpartition(".")
    suffix = dot + extension if stem and len(extension) <= 10 else ""
    head = base[: len(base) - len(suffix)].encode()[: MAX_NAME_BYTES - len(suffix.encode())]
    return head.decode(errors="ignore") + suffix
