"""The aggregate base class: command methods decide and ``record`` events; ``apply`` alone
changes state; the repository commits pending events.

>>> from dataclasses import dataclass
>>> from facta.events import event
>>> @event("doc.Incremented")
... @dataclass(frozen=True)
... class Incremented:
...     by: int
>>> class Counter(Aggregate):
...     def __init__(self, id: str | None = None) -> None:
...         super().__init__(id)
...         self.total = 0
...     def increment(self, by: int) -> None:
...         if by <= 0:
...             raise ValueError("increment by a positive amount")
...         self.record(Incremented(by))
...     def apply(self, event: object) -> None:
...         match event:
...             case Incremented(by=by):
...                 self.total += by
>>> counter = Counter()
>>> counter.increment(2)
>>> counter.total, counter.version, len(counter.pending_events)
(2, 0, 1)
"""

from __future__ import annotations

from typing import Any, ClassVar

from facta.ids import new_id, validate_stream_id

__all__ = ["Aggregate"]


class Aggregate:
    """Base class of aggregates.

    A subclass's ``__init__`` takes the id as its only required argument and sets up the
    empty state: that is the state of an aggregate with no events, from which every load
    starts. ``version`` is the stream version the aggregate was loaded at or last saved at;
    recorded events stay in ``pending_events`` until a save succeeds.

    ``type_name`` names the aggregate in snapshots (defaults to the class name);
    ``snapshot_every`` asks the repository for a snapshot every N events (None: never);
    ``snapshot_after_replaying`` (N events) and ``snapshot_after_seconds`` ask for one after a
    load that replayed that many events or took that long (by default a load that replayed
    ``snapshot_every`` events); ``snapshot_version`` is the schema version of the snapshot
    state; ``snapshot_type`` (a dataclass or msgspec.Struct) is its class, which
    ``snapshot_state`` returns and ``restore_state`` receives (see :mod:`facta.snapshots`).
    """

    type_name: ClassVar[str]
    snapshot_every: ClassVar[int | None] = None
    snapshot_after_replaying: ClassVar[int | None] = None
    snapshot_after_seconds: ClassVar[float | None] = None
    snapshot_version: ClassVar[int] = 1
    snapshot_type: ClassVar[type | None] = None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "type_name" not in cls.__dict__:
            cls.type_name = cls.__name__

    def __init__(self, id: str | None = None) -> None:
        self.id: str = new_id() if id is None else validate_stream_id(id)
        self.version: int = 0
        self._pending: list[object] = []

    def apply(self, event: object) -> None:
        """Change state by one event. The only place state changes; it must not fail."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement apply(event)")

    def snapshot_state(self) -> object:
        """The state to snapshot, as an instance of ``snapshot_type``."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement snapshot_state()")

    def restore_state(self, state: Any) -> None:
        """Set the state of a just-constructed aggregate from a snapshot's ``snapshot_type``."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement restore_state()")

    def record(self, event: object) -> None:
        """Apply a new event and queue it to be saved."""
        self.apply(event)
        self._pending.append(event)

    @property
    def pending_events(self) -> tuple[object, ...]:
        """Events recorded since the last load or save, oldest first."""
        return tuple(self._pending)

    def mark_saved(self, version: int) -> None:
        """Called by the repository once the pending events are stored at ``version``."""
        self._pending.clear()
        self.version = version

    def __repr__(self) -> str:
        pending = f", {len(self._pending)} pending" if self._pending else ""
        return f"<{type(self).__qualname__} {self.id} v{self.version}{pending}>"
