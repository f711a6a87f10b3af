"""Subscriptions: the global log after a checkpoint, then each new event as it commits.

A subscription reads what the log holds after its checkpoint, page by page, then waits for
appends (the backend's wake-up: LISTEN/NOTIFY on PostgreSQL, SQLite's data version, at once in
memory; a poll every ``poll_interval`` seconds besides, so a lost wake-up only delays) and
goes on, in the same skip-free order as ``read_all``, until it is closed. A durable one
(``name=...``) resumes after the checkpoint stored under its name and moves it only when the
consumer acknowledges an event (:meth:`AsyncSubscription.ack`): delivery is at least once. One
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
...     async with facta.connect_async("memory://") as store:
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

from collections.abc import AsyncIterator, Collection
from types import TracebackType
from typing import TYPE_CHECKING, Self

from facta.errors import StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.records import RUNNING, STOPPED, check_name

if TYPE_CHECKING:
    from facta.recorder_async import AsyncCheckpoints
    from facta.store_async import AsyncEventStore

__all__ = ["AsyncSubscription"]


class AsyncSubscription:
    """Every event of the log after a checkpoint, then the new ones, until closed.

    Made by :meth:`facta.AsyncEventStore.subscribe`; use it as an async context manager and
    iterate over it. ``checkpoint`` is the place of the last event handed out.
    """

    def __init__(
        self,
        store: AsyncEventStore,
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
        self._checkpoints: AsyncCheckpoints | None = None
        self._closed = False

    async def open(self) -> None:
        """Take a durable subscription's lock and load its checkpoint (nothing otherwise)."""
        if self.name is None or self._checkpoints is not None:
            return
        checkpoints = self.store.recorder.checkpoints(check_name(self.name))
        await checkpoints.open(self.wait, self.poll_interval)
        try:
            self.checkpoint = self._acked = await checkpoints.start(RUNNING, self.types or ())
        except BaseException:
            await checkpoints.close()
            raise
        self._checkpoints = checkpoints

    async def close(self) -> None:
        """Stop: iteration ends, a durable subscription's lock is released."""
        self._closed = True
        checkpoints, self._checkpoints = self._checkpoints, None
        if checkpoints is not None:
            try:
                await checkpoints.finish(STOPPED)
            finally:
                await checkpoints.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[RecordedEvent]:
        return self._follow()

    async def _follow(self) -> AsyncIterator[RecordedEvent]:
        if self.name is not None and self._checkpoints is None:
            raise StoreError(f"durable subscription {self.name!r} is not open: use `async with`")
        recorder, decode = self.store.recorder, self.store.decode
        while not self._closed:
            page = await recorder.read_all(self.checkpoint, self.types, self.batch_size)
            keys = await self.store.fetch_keys(page)  # of sealed personal fields
            for row in page:
                event = decode(row, keys)
                self.checkpoint = row.checkpoint
                yield event
                if self._closed:
                    return
            if len(page) < self.batch_size:
                await recorder.wait_for_events(self.poll_interval)

    async def ack(self, event: RecordedEvent) -> None:
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
        async with checkpoints.transaction() as connection:
            await checkpoints.save(connection, self._acked, after)
        self._acked = after
