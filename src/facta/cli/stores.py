"""The one way a command opens a store, and the codec that shows any store's events as JSON.

Reading commands open a store read-only: they never create, migrate or write one, so a typo
in a URL is an error ("not a facta store"), never a new empty store. The commands that write
either refuse a store that does not exist yet (``projections run`` and ``rebuild``) or bring
its schema up to date themselves (``migrate``).
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import msgspec

import facta
from facta import backends
from facta.codec import ZLIB, Codec
from facta.errors import DecodeError
from facta.personal.data_keys import DataKeys
from facta.personal.providers import KeyProvider

__all__ = ["Access", "StoredJSON", "open_store", "replica_option", "replica_options"]

F = TypeVar("F", bound=Callable[..., Any])


def replica_option(function: F) -> F:
    """``--replica URL`` (repeatable): hot standbys the command reads from."""
    return click.option(
        "--replica",
        "replicas",
        multiple=True,
        metavar="URL",
        help="A hot standby of the store's PostgreSQL server: the command reads the log there "
        "(writes and checkpoints stay on URL). Repeat for several; they take turns.",
    )(function)


def replica_options(url: str, replicas: Sequence[str]) -> dict[str, object]:
    """The store options for ``--replica`` URLs: none without any; a usage error for a
    backend that reads from no replicas."""
    if not replicas:
        return {}
    if "replicas" not in backends.find(url).options:
        raise click.UsageError("--replica is for PostgreSQL stores (hot standbys of the server)")
    return {"replicas": list(replicas)}


class Access(enum.Enum):
    """What a command may do to the store it opens: the options it opens it with."""

    READ = "read"  # never create, migrate or write: a place without a store is an error
    EXISTING = "existing"  # write to a store that exists (migrated if outdated), never create one
    MIGRATE = "migrate"  # open without migrating: the caller applies them (``facta migrate``)


_OPTIONS: dict[Access, dict[str, object]] = {
    Access.READ: {"read_only": True},
    Access.EXISTING: {"create": False},
    Access.MIGRATE: {"migrate": False},
}


@contextmanager
def open_store(
    url: str,
    access: Access,
    codec: Codec | None = None,
    keys: KeyProvider | None = None,
    replicas: Sequence[str] = (),
) -> Iterator[facta.EventStore]:
    """The store at ``url``, opened for ``access``, decoding events with ``codec`` (plain
    JSON by default: the command line knows none of the application's event classes) and
    opening personal fields with the key provider ``keys``.

    ``read_only`` goes to every backend (each one accepts it). ``create`` and ``migrate`` go
    only to the backends that have them: one without them (memory) has nothing to create or
    migrate. ``replicas`` are hot standbys to read from (``--replica``).
    """
    options = {**_OPTIONS[access], **replica_options(url, replicas)}
    if access is not Access.READ:
        accepted = backends.find(url).options
        options = {name: value for name, value in options.items() if name in accepted}
    if keys is not None:
        options = {**options, "keys": keys}
    with facta.connect(url, codec=codec or StoredJSON(), **options) as store:
        yield store


class StoredJSON(Codec):
    """Decodes stored events into plain JSON values, so the command line shows any store's
    events as stored, without the application's event classes (sealed personal fields stay
    sealed: ``{"$facta_sealed": ..., "subject": ..., "key": ...}``)."""

    def decode(
        self,
        type_name: str,
        schema_version: int,
        encoding: int,
        data: bytes,
        where: str = "",
        keys: DataKeys | None = None,
    ) -> Any:
        try:
            return msgspec.json.decode(zlib.decompress(data) if encoding & ZLIB else data)
        except (zlib.error, msgspec.DecodeError) as e:
            raise DecodeError(f"{where}type {type_name!r}: stored data is corrupt: {e}") from e
