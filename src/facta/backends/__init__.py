"""Backends, found by URL scheme: facta's own and any installed package's.

A backend is a :class:`Backend` published under the ``facta.backends`` entry-point group,
named by its URL scheme; a package adds one with, in its ``pyproject.toml``::

    [project.entry-points."facta.backends"]
    toy = "toy_backend:backend"

:func:`find` loads the backend of a URL's scheme; ``facta.connect`` opens a store through it.
Importing this package imports no backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from facta.errors import ConfigurationError

if TYPE_CHECKING:
    from facta.recorder import Recorder
    from facta.recorder_async import AsyncRecorder

__all__ = ["GROUP", "Backend", "find", "schemes"]

GROUP = "facta.backends"

# facta's own backends, also found without the package's entry points (a source checkout).
_BUILTIN = {
    "memory": "facta.backends.memory:backend",
    "sqlite": "facta.backends.sqlite:backend",
    "postgresql": "facta.backends.postgres:backend",
    "postgres": "facta.backends.postgres:backend",
}


@dataclass(frozen=True)
class Backend:
    """How ``facta.connect`` opens a store of one URL scheme.

    ``recorder(url, **options)`` and ``async_recorder(url, **options)`` make the sync and
    async recorders; ``options`` names every keyword they accept (``connect`` refuses the
    rest, listing these).
    """

    recorder: Callable[..., Recorder]
    async_recorder: Callable[..., AsyncRecorder]
    options: tuple[str, ...] = ()


def schemes() -> dict[str, str]:
    """Every known scheme and where its backend is (``module:attribute``)."""
    found = dict(_BUILTIN)
    for entry in entry_points(group=GROUP):
        found[entry.name] = entry.value
    return found


def find(url: object) -> Backend:
    """The backend for ``url``'s scheme; ``ConfigurationError`` listing the known ones."""
    known = schemes()
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"an event store URL looks like SCHEME://..., e.g. memory://, sqlite:///file.db or "
            f"postgresql://host/db; got {url!r} (known schemes: {', '.join(sorted(known))})"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in known:
        raise ConfigurationError(
            f"no backend for scheme {scheme!r} in {url!r}; known schemes: "
            f"{', '.join(sorted(known))} (a package adds one through the {GROUP!r} entry points)"
        )
    module_name, _, attribute = known[scheme].partition(":")
    target: Any = import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not isinstance(target, Backend):
        raise ConfigurationError(
            f"the backend of scheme {scheme!r} ({known[scheme]}) is a "
            f"{type(target).__qualname__}, not a facta.backends.Backend"
        )
    return target
