# WARNING: generated from src/facta/subscriptions_async.py by tools/gen_sync.py; do not edit.
"""Subscriptions: the global log after a checkpoint, then each new event as it commits.

A subscription reads what the log holds after its checkpoint, page by page, then waits for
appends (the backend's wake-up: LISTEN/NOTIFY on PostgreSQL, SQLite's data version, at once in
memory; a poll every ``poll_interval`` seconds besides, so a lost wake-up only delays) and
goes on, in the same skip-free order as ``read_all``, until it is closed. A durable one
(``name=...``) resumes after the checkpoint stored under its name and moves it only when the
consumer acknowledges an event (:meth:`Subscription.ack`): delivery is at least once. One
durable subscription per name runs at a time, like a projection, and ``facta projections``
lists it. The sync twin (``subscriptions.py``) is generated from this module.

>>> import asyncio
>>> from dataclasses import dataclass
>>> import facta
>>> @facta.event("doc.Paid")
... @dataclass(frozen=True)
... class Paid:
...     amount: int
>>> async def follow() -> list[int]:
...     async with facta.connect("memory://") as store:
...         await store.append("doc-sub", [Paid(1), Paid(2)], facta.ANY)
...         seen = []
...         async with store.subscribe() as events:
...             async for event in events:
...                 seen.append(event.data.amount)
...                 if len(seen) == 2:
...                     break
...         return seen
>>> asyncio.run(follow())
[1, 2]
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Self

from facta.errors import StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.records import RUNNING, STOPPED, check_name

if TYPE_CHECKING:
    from facta.recorder import Checkpoints
    from facta.store import EventStore

__all__ = ["Subscription"]


class Subscription:
    """Every event of the log after a checkpoint, then the new ones, until closed.

    Made by :meth:`facta.EventStore.subscribe`; use it as an async context manager and
    iterate over it. ``checkpoint`` is the place of the last event handed out.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        after: Checkpoint | None,
        types: Collection[str] | None,
        batch_size: int,
        name: str | None,
        poll_interval: float,
        wait: bool,
    ) -> None:
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval!r}")
        if name is not None and after is not None:
            raise ValueError(
                f"a durable subscription ({name!r}) resumes after its stored checkpoint; "
                "give name or after, not both"
            )
        self.store, self.name = store, name
        self.types = None if types is None else tuple(sorted(set(types)))
        self.batch_size, self.poll_interval, self.wait = batch_size, poll_interval, wait
        self.checkpoint = after or Checkpoint()
        self._acked = self.checkpoint
        self._checkpoints: Checkpoints | None = None
        self._closed = False

    def open(self) -> None:
        """Take a durable subscription's lock and load its checkpoint (nothing otherwise)."""
        if self.name is None or self._checkpoints is not None:
            return
        checkpoints = self.store.recorder.checkpoints(check_name(self.name))
        checkpoints.open(self.wait, self.poll_interval)
        try:
            self.checkpoint = self._acked = checkpoints.start(RUNNING, self.types or ())
        except BaseException:
            checkpoints.close()
            raise
        self._checkpoints = checkpoints

    def close(self) -> None:
        """Stop: iteration ends, a durable subscription's lock is released."""
        self._closed = True
        checkpoints, self._checkpoints = self._checkpoints, None
        if checkpoints is not None:
            try:
                checkpoints.finish(STOPPED)
            finally:
                checkpoints.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[RecordedEvent]:
        return self._follow()

    def _follow(self) -> Iterator[RecordedEvent]:
        if self.name is not None and self._checkpoints is None:
            raise StoreError(f"durable subscription {self.name!r} is not open: use `async with`")
        recorder, decode = self.store.recorder, self.store.decode
        while not self._closed:
            page = recorder.read_all(self.checkpoint, self.types, self.batch_size)
            keys = self.store.fetch_keys(page)  # of sealed personal fields
            for row in page:
                event = decode(row, keys)
                self.checkpoint = row.checkpoint
                yield event
                if self._closed:
                    return
            if len(page) < self.batch_size:
                recorder.wait_for_events(self.poll_interval)

    def ack(self, event: RecordedEvent) -> None:
        """Store ``event`` (and every event before it) as processed: a durable subscription
        resumes after it. Acknowledging an event again, or an older one, changes nothing."""
        checkpoints = self._checkpoints
        if checkpoints is None:
            raise StoreError(
                "only a durable subscription (store.subscribe(name=...)), while open, "
                "takes acknowledgements"
            )
        after = event.checkpoint
        if after <= self._acked:
            return
        with checkpoints.transaction() as connection:
            checkpoints.save(connection, self._acked, after)
        self._acked = after
