"""Event types and the envelopes events travel in.

A user event is a plain typed class (a frozen dataclass, a ``msgspec.Struct`` or a pydantic
model) registered under a stable type name and a schema version. The type name, never the
module path, is what is stored, so renaming or moving a class does not break stored data.

>>> from dataclasses import dataclass
>>> @event("doc.AccountOpened", version=2)
... @dataclass(frozen=True)
... class AccountOpened:
...     owner: str
>>> default_registry.type_of(AccountOpened(owner="ada"))
EventType(name='doc.AccountOpened', version=2)
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import msgspec

from facta.errors import InvalidEvent, UnknownEventType
from facta.event_classes import is_event_class
from facta.ids import uuid7

__all__ = [
    "Checkpoint",
    "EventRegistry",
    "EventType",
    "Metadata",
    "NewEvent",
    "RecordedEvent",
    "default_registry",
    "event",
]

T = TypeVar("T", bound=type)
if TYPE_CHECKING:  # PEP 696 defaults: a bare RecordedEvent is RecordedEvent[Any]
    from typing_extensions import TypeVar as DefaultingTypeVar

    D = DefaultingTypeVar("D", covariant=True, default=Any)
else:  # typing.TypeVar takes a default from Python 3.13 on; at run time none is needed
    D = TypeVar("D", covariant=True)


class EventType(NamedTuple):
    """The stored identity of an event class: its type name and current schema version."""

    name: str
    version: int


class EventRegistry:
    """Maps type names to event classes and back. Thread-safe; usually the default one."""

    def __init__(self) -> None:
        self._by_name: dict[str, type] = {}
        self._by_class: dict[type, EventType] = {}
        self._lock = threading.Lock()
        self.generation = 0  # bumped by every registration: lets codecs cache per generation

    def register(self, cls: type, name: str, version: int = 1) -> None:
        """Register ``cls`` as the current class of events named ``name``."""
        if not isinstance(name, str) or not name or "\x00" in name:
            raise InvalidEvent(f"event type name must be a non-empty str without NUL: {name!r}")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidEvent(f"schema version of {name!r} must be an int >= 1, got {version!r}")
        if not is_event_class(cls):
            raise InvalidEvent(
                f"event type {name!r}: {cls!r} is not a dataclass, msgspec.Struct or pydantic "
                "model class"
            )
        with self._lock:
            old = self._by_name.get(name)
            if old is not None and _class_key(old) != _class_key(cls):
                raise InvalidEvent(
                    f"event type name {name!r} is already taken by {_class_key(old)}; "
                    "type names must be unique"
                )
            taken = self._by_class.get(cls)
            if taken is not None and taken.name != name:
                raise InvalidEvent(
                    f"{_class_key(cls)} is already registered as {taken.name!r}; a class has "
                    f"one type name (register a renamed type with an upcaster instead)"
                )
            if old is not None:  # the same class again (a module reload): the new one wins
                self._by_class.pop(old, None)
            self._by_name[name] = cls
            self._by_class[cls] = EventType(name, version)
            self.generation += 1

    def type_of(self, event: object) -> EventType:
        """The registered type of an event instance; ``InvalidEvent`` if it has none."""
        try:
            return self._by_class[type(event)]
        except KeyError:
            raise InvalidEvent(
                f"{type(event).__qualname__} is not a registered event class; decorate it "
                "with @facta.event('TypeName')"
            ) from None

    def class_of(self, name: str) -> type:
        """The class registered for a type name; ``UnknownEventType`` if none is."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownEventType(f"no event class is registered for type {name!r}") from None

    def get(self, name: str) -> tuple[type, int] | None:
        """The class and current schema version for a type name, or None."""
        cls = self._by_name.get(name)
        return None if cls is None else (cls, self._by_class[cls].version)

    def names(self) -> list[str]:
        """Every registered type name, sorted."""
        return sorted(self._by_name)


def _class_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


default_registry = EventRegistry()


def event(
    name: str, *, version: int = 1, registry: EventRegistry | None = None
) -> Callable[[T], T]:
    """Class decorator: register an event class under a stable type name and schema version."""

    def register(cls: T) -> T:
        (registry or default_registry).register(cls, name, version)
        return cls

    return register


class Metadata(msgspec.Struct, frozen=True, omit_defaults=True):
    """What is known about an event besides its data.

    ``user`` holds JSON values (str, int, finite float, bool, None, lists and str-keyed
    dicts of them): anything else would read back as something else, so appends refuse it.
    """

    correlation_id: str | None = None
    causation_id: str | None = None
    user: dict[str, Any] = {}


EMPTY_METADATA = Metadata()


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append, when the caller wants to choose its id or attach metadata.

    Plain event objects may be appended directly; they get a fresh UUIDv7 and no metadata.
    """

    data: object
    event_id: uuid.UUID = msgspec.field(default_factory=uuid7)
    metadata: Metadata = EMPTY_METADATA


class Checkpoint(NamedTuple):
    """A place in the global log: read_all(after=checkpoint) resumes just after it.

    ``transaction_id`` is the writer's transaction on PostgreSQL and 0 on the embedded
    backends; the global order is by the pair. ``Checkpoint()`` is the start of the log.
    """

    transaction_id: int = 0
    position: int = 0


class RecordedEvent(msgspec.Struct, Generic[D], frozen=True, gc=False):
    """A stored event, decoded, with where and when it was stored.

    Generic in its ``data``: a handler that takes ``RecordedEvent[Deposited]`` has
    ``event.data`` checked as a ``Deposited`` by a type checker; a bare ``RecordedEvent``
    is ``RecordedEvent[Any]``.
    """

    stream_id: str
    version: int
    position: int
    event_id: uuid.UUID
    type: str
    schema_version: int
    data: D
    metadata: Metadata
    recorded_at: datetime
    transaction_id: int = 0

    @property
    def checkpoint(self) -> Checkpoint:
        """The checkpoint to resume read_all from, just after this event."""
        return Checkpoint(self.transaction_id, self.position)
