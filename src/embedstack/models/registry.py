"""Where `load_model` looks things up: backends by name, and resolvers that claim a model name.

A backend is a factory that builds a model from a catalog entry (`register_backend`). A
resolver decides whether a name is its kind of model (an endpoint, a file, a folder) and
loads it, or returns None to pass (`register_resolver`); they are tried in order. Adding a kind
of model (an image encoder) is one module and one registration, not a new branch somewhere.
"""

from __future__ import annotations

from collections.abc import Callable, KeysView
from dataclasses import dataclass

from embedstack.errors import ModelNotFoundError
from embedstack.models.base import EmbeddingModel
from embedstack.models.catalog import ModelSpec


@dataclass(frozen=True)
class LoadRequest:
    """What `load_model` was asked for; resolvers read what they need."""

    name: str
    backend: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 30.0


BackendFactory = Callable[[ModelSpec, str], EmbeddingModel]  # (catalog entry, backend name)
Resolver = Callable[[LoadRequest], EmbeddingModel | None]  # None: not this resolver's name

CATALOG_RESOLVER = "catalog"

_backends: dict[str, BackendFactory] = {}
_resolvers: dict[str, Resolver] = {}  # in the order they are tried

BACKEND_NAMES: KeysView[str] = _backends.keys()  # a live view, in registration order


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Make `name` a backend that catalog entries can list; `factory(spec, name)` loads one."""
    if name in _backends and not replace:
        raise ValueError(f"backend {name!r} is already registered")
    _backends[name] = factory


def unregister_backend(name: str) -> None:
    _backends.pop(name, None)


def backend_factory(name: str) -> BackendFactory:
    try:
        return _backends[name]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown backend {name!r}; choose one of {', '.join(_backends)}"
        ) from None


def register_resolver(
    name: str, resolver: Resolver, *, before: str | None = CATALOG_RESOLVER
) -> None:
    """Try `resolver` for every name ahead of the resolver called `before` (None: last).

    The default is ahead of the catalog, which claims every name it is given.
    """
    if name in _resolvers:
        raise ValueError(f"resolver {name!r} is already registered")
    if before is not None and before not in _resolvers:
        raise ValueError(f"no resolver {before!r} to go before; have {', '.join(_resolvers)}")
    entries = list(_resolvers.items())
    at = [n for n, _ in entries].index(before) if before is not None else len(entries)
    entries.insert(at, (name, resolver))
    _resolvers.clear()
    _resolvers.update(entries)


def unregister_resolver(name: str) -> None:
    _resolvers.pop(name, None)


def resolver_names() -> tuple[str, ...]:
    return tuple(_resolvers)


def resolve(request: LoadRequest) -> EmbeddingModel:
    """The model of the first resolver that claims the name."""
    for resolver in list(_resolvers.values()):
        model = resolver(request)
        if model is not None:
            return model
    raise ModelNotFoundError(f"no resolver can load {request.name!r}")
