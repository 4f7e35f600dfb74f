"""One exception hierarchy, so callers (the CLI, the coming HTTP server) can tell user errors
from bugs. Every class carries the HTTP status it maps to; its message is one line that names
the file, field or value at fault."""

from __future__ import annotations


class EmbedstackError(Exception):
    """Base class: a problem the user can act on."""

    status: int = 400


# ---- input ---------------------------------------------------------------------------------


class InvalidInputError(EmbedstackError, ValueError):
    """Texts, ids, metadata, vectors or options that cannot be stored or searched."""

    status = 422


class FilterError(InvalidInputError):
    """A metadata filter that is malformed or uses an unknown operator."""


class LimitExceededError(InvalidInputError):
    """A request over a documented limit (filter depth or width, batch size, text length)."""

    status = 413


class FilterLimitError(FilterError, LimitExceededError):
    """A filter nested too deep or with too many conditions to evaluate."""

    status = 413


class IngestError(InvalidInputError):
    """One file that cannot be ingested (damaged, encrypted, binary, too large, ...)."""


class DatasetError(InvalidInputError):
    """An evaluation data set that is missing files or has a corrupt line."""


# ---- models --------------------------------------------------------------------------------


class ModelNotFoundError(EmbedstackError):
    """The model name is not in the catalog, or its package is not installed."""

    status = 404


class ModelLoadError(ModelNotFoundError):
    """A model's files exist but cannot be loaded (a damaged or incompatible file)."""

    status = 503


OnnxLoadError = ModelLoadError  # ONNX Runtime could not load a model file


class UpstreamError(EmbedstackError):
    """A server embedstack calls (an embedding or chat endpoint) failed or answered nonsense."""

    status = 502


class RemoteModelError(UpstreamError):
    """The embedding endpoint refused, timed out, failed or answered something else."""


class LLMError(UpstreamError):
    """The LLM endpoint is down, slow, failing, or answered something that is not a reply."""


class ContextWindowError(LLMError):
    """The endpoint says the prompt and answer do not fit its context window."""

    status = 413


# ---- collections ---------------------------------------------------------------------------


class CollectionError(EmbedstackError):
    """A collection that conflicts with the request (built with another model or index)."""

    status = 409


class CollectionNotFoundError(CollectionError):
    """No collection at that path."""

    status = 404


class RecordNotFoundError(CollectionError):
    """No record with that id in the collection."""

    status = 404


class ReadOnlyCollectionError(CollectionError):
    """A write to a collection opened from a read-only folder."""

    status = 409


class StorageError(CollectionError):
    """The disk or database failed (full disk, I/O error, locked too long); nothing changed."""

    status = 503


class CollectionClosedError(StorageError):
    """The collection was closed while a call used it; over HTTP, deleted meanwhile."""

    status = 404


class CorruptCollectionError(StorageError):
    """The database or its files are damaged; `embedstack check` says what is wrong."""
