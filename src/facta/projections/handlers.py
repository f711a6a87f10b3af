"""``@handles``: how a projection says which events it wants, and the table built from it.

The table maps event classes to method names; a runner resolves it against its store's codec
into the stored type names to read (so the store skips every other event without decoding it)
and the bound method for each class. A handler that takes ``RecordedEvent[Deposited]`` has
``event.data`` type-checked as a ``Deposited``, and ``@handles`` of one class is checked
against that annotation.

>>> import sqlite3
>>> from dataclasses import dataclass
>>> from facta import RecordedEvent, event
>>> from facta.projections import Projection
>>> @event("doc.Deposited")
... @dataclass(frozen=True)
... class Deposited:
...     amount: int
>>> class Balances(Projection[sqlite3.Connection]):
...     name = "doc-balances"
...     def setup(self, db: sqlite3.Connection) -> None:
...         db.execute("CREATE TABLE IF NOT EXISTS balances (id TEXT PRIMARY KEY, amount INT)")
...     def reset(self, db: sqlite3.Connection) -> None:
...         db.execute("DELETE FROM balances")
...     @handles(Deposited)
...     def deposited(self, event: RecordedEvent[Deposited], db: sqlite3.Connection) -> None:
...         db.execute(
...             "INSERT INTO balances VALUES (?, ?) ON CONFLICT (id)"
...             " DO UPDATE SET amount = amount + excluded.amount",
...             (event.stream_id, event.data.amount),
...         )
>>> class Broken(Projection[None]):
...     name = "doc-broken"
...     @handles(Deposited)
...     async def deposited(self, event: RecordedEvent, db: None) -> None: ...
Traceback (most recent call last):
  ...
TypeError: Broken.deposited is a coroutine function (async def), but Broken is a sync Projection: nothing would await it; make it a plain def, or subclass AsyncProjection
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from facta.codec import Codec
from facta.errors import InvalidEvent
from facta.events import RecordedEvent
from facta.records import check_name

__all__ = [
    "check_methods",
    "check_name",
    "handler_table",
    "handles",
    "resolve",
    "writes_only",
]

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E")
S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")
# A handler of events of class E: (self, RecordedEvent[E], connection) -> anything
Handler = Callable[Concatenate[S, RecordedEvent[E], P], R]

_MARK = "__facta_handles__"
_WRITES_ONLY = "__facta_writes_only__"


@overload
def handles(
    event_class: type[E], /, *, writes_only: bool = False
) -> Callable[[Handler[S, E, P, R]], Handler[S, E, P, R]]: ...
@overload
def handles(*event_classes: type, writes_only: bool = False) -> Callable[[F], F]: ...
def handles(*event_classes: type, writes_only: bool = False) -> Callable[[F], F]:
    """Method decorator: this method handles events of these classes.

    The method is called as ``method(event, connection)`` with the :class:`RecordedEvent`
    (its ``data`` is an instance of one of the classes, upcasted) and the read model's
    connection, inside the transaction that also moves the projection's checkpoint. Annotate
    ``event`` as ``RecordedEvent[Deposited]`` (a union for several classes) to have its
    ``data`` type-checked.

    A handler may return a :class:`~facta.projections.Write` (or a list of them) instead of
    executing it: a runner sends a batch's writes together. ``writes_only=True`` promises that
    the handler does nothing with the connection but return writes; the runner then queues
    its writes without first sending those queued before (which it does before any other
    handler, so that each sees the effects of the events before it).
    """
    if not event_classes or not all(isinstance(cls, type) for cls in event_classes):
        raise TypeError(f"@handles takes one or more event classes, got {event_classes!r}")

    def mark(method: F) -> F:
        setattr(method, _MARK, (*getattr(method, _MARK, ()), *event_classes))
        if writes_only:
            setattr(method, _WRITES_ONLY, True)
        return method

    return mark


def handler_table(cls: type) -> dict[type, str]:
    """``event class -> method name`` for a projection class, subclasses overriding bases."""
    table: dict[type, str] = {}
    for klass in reversed(cls.__mro__):
        mine: dict[type, str] = {}
        for name, attribute in vars(klass).items():
            for event_class in getattr(attribute, _MARK, ()):
                if event_class in mine:
                    raise TypeError(
                        f"{klass.__qualname__}: {event_class.__qualname__} is handled by both "
                        f"{mine[event_class]}() and {name}(); keep one handler per event class"
                    )
                mine[event_class] = name
        table.update(mine)
    return table


def check_methods(cls: type, *, asynchronous: bool) -> None:
    """Refuse coroutine functions as the handlers or hooks of a sync projection class."""
    if asynchronous:
        return
    names = {"setup", "reset", *handler_table(cls).values()}
    for name in sorted(names):
        if inspect.iscoroutinefunction(getattr(cls, name, None)):
            raise TypeError(
                f"{cls.__qualname__}.{name} is a coroutine function (async def), but "
                f"{cls.__qualname__} is a sync Projection: nothing would await it; make it a "
                "plain def, or subclass AsyncProjection"
            )


def writes_only(handler: Callable[..., Any]) -> bool:
    """Whether a (bound) handler was marked ``@handles(..., writes_only=True)``."""
    return bool(getattr(handler, _WRITES_ONLY, False))


def resolve(
    projection: object, table: dict[type, str], codec: Codec
) -> tuple[dict[type, Callable[..., Any]], tuple[str, ...]]:
    """The bound handler per event class, and every stored type name that decodes to one."""
    registry = codec.registry
    names: dict[type, str] = {}
    for name in registry.names():
        found = registry.get(name)
        if found is not None:
            names[found[0]] = name
    handlers: dict[type, Callable[..., Any]] = {}
    types: set[str] = set()
    for event_class, method in table.items():
        type_name = names.get(event_class)
        if type_name is None:
            raise InvalidEvent(
                f"projection {type(projection).__qualname__} handles {event_class.__qualname__}, "
                "which is not a registered event class; decorate it with @facta.event('TypeName')"
            )
        handlers[event_class] = getattr(projection, method)
        types.add(type_name)
        types |= codec.upcasters.renamed_into(type_name)
    return handlers, tuple(sorted(types))
