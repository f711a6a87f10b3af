"""Correlation and causation ids that flow by themselves into what is appended.

A context variable carries the ids of the conversation in hand; every event the store
appends meanwhile gets them in its metadata, unless it states its own (explicit metadata
wins, field by field). Two ways to set them, both context managers:

- :func:`correlation` where a conversation starts: a web request, a command from outside
  (``with correlation(request_id): ...``);
- :func:`caused_by` while handling an event: what is appended then has ``causation_id`` =
  that event's id and its correlation id. Projection runners and inline projections run
  every handler inside it; an inbox, a process manager or a subscription loop does the same
  (``with caused_by(event): ...``). A loop over many events can take :func:`causes` once
  instead and name each event's cause with one call.

The root of a conversation (an event appended with no correlation id) is stored without
one: its own event id is its correlation id (the convention of Marten and EventStoreDB),
which is what :func:`caused_by` and :func:`correlation_of` give for it. Storing it again in
each root event would cost every plain append a metadata encoding for no information.

A context variable belongs to the task or thread that set it: tasks start with a copy of
their creator's ids, threads with none (run work in a thread with
``contextvars.copy_context().run`` to carry them over; ``asyncio.to_thread`` does). Pure:
no I/O.

>>> import uuid
>>> from datetime import UTC, datetime
>>> from facta.events import Metadata, RecordedEvent
>>> opened = RecordedEvent("ticket-1", 1, 1, uuid.UUID(int=7), "TicketOpened", 1, None,
...                        Metadata(), datetime(2026, 1, 1, tzinfo=UTC))
>>> with correlation("req-7f3a"):
...     current()
Ids(correlation_id='req-7f3a', causation_id=None)
>>> with caused_by(opened):
...     current()
Ids(correlation_id='00000000-0000-0000-0000-000000000007', causation_id='00000000-0000-0000-0000-000000000007')
>>> later = RecordedEvent("ticket-1", 2, 2, uuid.UUID(int=8), "TicketClosed", 1, None,
...                       Metadata(), datetime(2026, 1, 2, tzinfo=UTC))
>>> with causes() as cause:
...     for event in (opened, later):
...         _ = cause(event)  # ... handle the event
...     current().causation_id
'00000000-0000-0000-0000-000000000008'
>>> current()
Ids(correlation_id=None, causation_id=None)
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, NamedTuple

import msgspec

from facta.events import EMPTY_METADATA, Metadata, RecordedEvent

__all__ = [
    "TRACEPARENT",
    "Ids",
    "caused_by",
    "causes",
    "correlation",
    "correlation_of",
    "current",
]

#: The key of ``Metadata.user`` that holds the W3C ``traceparent`` of the span an event was
#: appended in (:mod:`facta.telemetry`).
TRACEPARENT = "traceparent"


class Ids(NamedTuple):
    """The correlation and causation ids in force (None where none is)."""

    correlation_id: str | None = None
    causation_id: str | None = None


_NONE = Ids()
# The ids in force, or the event being handled: its ids are worked out only when something is
# appended (most handlers append nothing, and a UUID's str() is not free).
_ids: ContextVar[Ids | RecordedEvent[Any]] = ContextVar("facta_ids", default=_NONE)


class _Scope:
    """Sets the ids on entering and puts back the previous ones on leaving."""

    __slots__ = ("_ids", "_token")

    def __init__(self, ids: Ids | RecordedEvent[Any]) -> None:
        self._ids = ids
        self._token: Token[Ids | RecordedEvent[Any]] | None = None

    def __enter__(self) -> None:
        self._token = _ids.set(self._ids)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _ids.reset(self._token)
            self._token = None


def correlation(correlation_id: str, causation_id: str | None = None) -> _Scope:
    """A context manager: what is appended inside it belongs to ``correlation_id``.

    For where a conversation starts (a web request, a message from another system: give its
    id as ``causation_id``). It replaces the ids in force; nested scopes restore them on leaving.
    """
    _check_id("correlation_id", correlation_id)
    if causation_id is not None:
        _check_id("causation_id", causation_id)
    return _Scope(Ids(correlation_id, causation_id))


def caused_by(event: RecordedEvent[Any]) -> _Scope:
    """A context manager: what is appended inside it was caused by ``event``.

    Events appended inside get ``causation_id`` = the event's id and its correlation id
    (:func:`correlation_of`). Runners and inline projections call handlers inside it; an
    inbox, a process manager or a loop over a subscription uses it the same way.
    """
    if not isinstance(event, RecordedEvent):
        raise TypeError(
            f"caused_by takes the RecordedEvent being handled, got {type(event).__qualname__}"
        )
    return _Scope(event)


class _Causes:
    """Puts back the ids in force on leaving; inside, what it gave sets the cause."""

    __slots__ = ("_token",)

    def __enter__(self) -> Callable[[RecordedEvent[Any]], object]:
        self._token = _ids.set(_ids.get())
        return _ids.set

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _ids.reset(self._token)


def causes() -> _Causes:
    """A context manager for a loop over events: ``with causes() as cause:`` then
    ``cause(event)`` before handling each, and what is appended meanwhile was caused by the
    last event named. As :func:`caused_by` for each event, at the cost of one call per event
    (a runner's batch); leaving puts back the ids in force before. Each event must be a
    ``RecordedEvent`` (what readers yield); what ``cause`` returns is of no use.
    """
    return _Causes()


def correlation_of(event: RecordedEvent[Any]) -> str:
    """The event's correlation id; its own id if it has none (it started the conversation)."""
    return event.metadata.correlation_id or str(event.event_id)


def current() -> Ids:
    """The ids in force in this task or thread."""
    return _as_ids(_ids.get())


def _as_ids(found: Ids | RecordedEvent[Any]) -> Ids:
    if isinstance(found, Ids):
        return found
    return Ids(correlation_of(found), str(found.event_id))


def ambient(traceparent: str | None = None) -> Callable[[Metadata], Metadata] | None:
    """What the store applies to each appended event's metadata: the ids in force and the
    ``traceparent`` given (a key of ``user``) filled in where the metadata has none. None
    when there is nothing to add, so that a plain append costs one look at the variable."""
    found = _ids.get()
    if found is _NONE and traceparent is None:
        return None
    return _Filler(_as_ids(found), traceparent)


class _Filler:
    """Completes metadata with the ids in force and a traceparent; explicit values win."""

    __slots__ = ("_ids", "_plain", "_traceparent")

    def __init__(self, ids: Ids, traceparent: str | None) -> None:
        self._ids, self._traceparent = ids, traceparent
        user = {} if traceparent is None else {TRACEPARENT: traceparent}
        self._plain = Metadata(ids.correlation_id, ids.causation_id, user)

    def __call__(self, metadata: Metadata) -> Metadata:
        if metadata is EMPTY_METADATA:
            return self._plain
        if not isinstance(metadata, Metadata):  # the codec says what is wrong with it
            return metadata
        changes: dict[str, object] = {}
        correlation_id, causation_id = self._ids
        if metadata.correlation_id is None and correlation_id is not None:
            changes["correlation_id"] = correlation_id
        if metadata.causation_id is None and causation_id is not None:
            changes["causation_id"] = causation_id
        traceparent = self._traceparent
        user = metadata.user
        if traceparent is not None and isinstance(user, dict) and TRACEPARENT not in user:
            changes["user"] = {**user, TRACEPARENT: traceparent}
        return msgspec.structs.replace(metadata, **changes) if changes else metadata


def _check_id(what: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty str, got {value!r}")
