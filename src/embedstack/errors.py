"""One exception hierarchy, so callers (and the CLI) can tell user errors from bugs."""


class EmbedstackError(Exception):
    """Base class: a problem the user can act on; its message is one line that names it."""


class ModelNotFoundError(EmbedstackError):
    """The model name is not in the catalog, or its package is not installed."""


class InvalidInputError(EmbedstackError, ValueError):
    """Texts, ids, metadata or vectors that cannot be stored or searched."""


class FilterError(InvalidInputError):
    """A metadata filter that is malformed or uses an unknown operator."""


class CollectionError(EmbedstackError):
    """A collection folder that is missing, unreadable, or built with another model."""


class DatasetError(EmbedstackError):
    """An evaluation data set that is missing files or has a corrupt line."""


class IngestError(EmbedstackError):
    """One file that cannot be ingested (damaged, encrypted, binary, too large, ...)."""
