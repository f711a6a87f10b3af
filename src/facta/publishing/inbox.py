"""The inbox: events from another service's store, received through a broker, applied to a
projection of this store exactly once and, per stream, in order.

A relay publishes each event of the sending store with its stream, version and id in the
message's headers (:mod:`facta.publishing.broker`). An :class:`Inbox` reads those messages from
a broker subscription (a :class:`~facta.publishing.source.Source`) in batches, and for each
batch, in one transaction of this store: reads how far it got in each stream, calls the
projection's handlers for the events that come next, records the new versions, and commits;
only then does it acknowledge the messages. A message at or below the version recorded for its
stream is a duplicate (a relay that died and sent its batch again, two relays, a broker's
redelivery after the inbox died before acknowledging): it is acknowledged and not applied. So
each event's effect on the read model happens once, whatever dies when.

An event past the next version its stream expects (``version > last + 1``) meets the inbox's
:class:`Gaps` policy: parked in this store until the versions before it come (the default),
refused (the broker delivers it again later), or accepted (for sources that carry only some
of each stream's events). One inbox per name runs at a time: it takes the lock a projection
of that name would take.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from facta.errors import NotAFactaStore, SchemaVersionError, StoreError
from facta.projections.errors import OnError
from facta.projections.handlers import resolve
from facta.projections.projection import Projection
from facta.projections.projection_async import AsyncProjection
from facta.publishing.broker import BrokerUnavailable
from facta.publishing.inbox_batch import (
    Batch,
    Gaps,
    InboxError,
    Item,
    Key,
    Rules,
    describe,
    describe_key,
    item_for,
)
from facta.publishing.source import Delivery, Source
from facta.recorder_async import AsyncCheckpoints
from facta.records import FAILED, RUNNING, STOPPED, HeldMessage, check_name
from facta.store_async import AsyncEventStore

__all__ = ["Gaps", "Inbox", "InboxError"]

log = logging.getLogger("facta.publishing")

# Store errors an inbox does not wait out: they need a person (an upgrade, a wrong URL).
_PERMANENT = (NotAFactaStore, SchemaVersionError)


class Inbox:
    """Applies the events a broker delivers to ``projection``, in a transaction of ``store``.

    ``name`` (1-100 letters, digits, ``_``, ``.``, ``-``) keys the inbox's state in the store
    and its lock, and names its subscription at the broker (unless the source was given one).
    ``gaps`` says what to do with an event whose stream has not reached the version before it
    (:class:`Gaps`); ``join_midway`` lets a stream the inbox has never seen start at any
    version (an inbox that joined after the first events were published and are gone);
    ``on_error`` whether a message it cannot apply stops the inbox (:class:`InboxError`) or
    goes to its dead letters. ``batch_size`` messages at most are applied per transaction;
    ``redelivery_delay`` is how long a refused message stays away. Use it as an async context
    manager; ``run()`` applies messages until :meth:`stop`, ``catch_up()`` until none comes.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        projection: AsyncProjection[Any] | Projection[Any],
        source: Source,
        *,
        name: str,
        gaps: Gaps = Gaps.PARK,
        join_midway: bool = False,
        on_error: OnError = OnError.STOP,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        redelivery_delay: float = 5.0,
        max_backoff: float = 30.0,
        wait: bool = False,
    ) -> None:
        if not isinstance(projection, AsyncProjection | Projection):
            raise TypeError(
                f"an inbox feeds a facta.projections Projection or AsyncProjection, not a "
                f"{type(projection).__qualname__}"
            )
        if not isinstance(source, Source):
            raise TypeError(
                f"an inbox reads a facta.publishing.Source (JetStreamSource, RabbitMQSource, "
                f"RedisSource), not a {type(source).__qualname__}"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if not poll_interval > 0 or not max_backoff > 0 or not redelivery_delay >= 0:
            raise ValueError(
                "poll_interval and max_backoff must be > 0 seconds, redelivery_delay >= 0"
            )
        self.store, self.projection, self.source = store, projection, source
        self.name = check_name(name)
        self.gaps, self.join_midway = Gaps(gaps), join_midway
        self.on_error = OnError(on_error)
        self.batch_size, self.poll_interval = batch_size, poll_interval
        self.redelivery_delay, self.max_backoff, self.wait = redelivery_delay, max_backoff, wait
        # What this run did (since the inbox opened).
        self.applied = 0  # events whose version the inbox recorded (handled, or not its type)
        self.duplicates = 0  # messages dropped: their stream was at or past their version
        self.refused = 0  # messages handed back to the broker (Gaps.REFUSE)
        self.dead_lettered = 0  # messages kept in the dead letters (OnError.DEAD_LETTER)
        self._checkpoints: AsyncCheckpoints | None = None
        self._rules: Rules | None = None
        self._parked: dict[str, dict[int, str | None]] = {}  # stream -> version -> event id
        self._recover = False  # parked messages may be next in line: look before receiving
        self._dropped = False  # the checkpoints were closed by a store failure
        self._settled: set[int] = set()  # ids of the deliveries of this round settled so far
        self._stopping = asyncio.Event()
        self._failed = False
        self._failures = 0

    @property
    def parked(self) -> int:
        """How many messages wait in the store for their stream's earlier versions."""
        return sum(len(versions) for versions in self._parked.values())

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Take the inbox's lock, create the read model (``setup``), connect to the broker."""
        if self._checkpoints is not None:
            return
        codec = self.store.codec
        handlers, types = resolve(self.projection, self.projection.handler_names, codec)
        self._rules = Rules(
            self.name,
            self.gaps,
            self.join_midway,
            self.on_error,
            handlers,
            frozenset(types),
            codec,
        )
        checkpoints = self.store.recorder.checkpoints(self.name)
        await checkpoints.open(self.wait, self.poll_interval)
        try:
            await self._start(checkpoints)
            await self.source.open(self.name)
        except BaseException:
            await checkpoints.close()
            raise
        self._checkpoints, self._failed = checkpoints, False

    async def _start(self, checkpoints: AsyncCheckpoints) -> None:
        """Set up the read model, record that the inbox runs, learn what it has parked."""
        async with checkpoints.transaction() as connection:
            await _call(self.projection.setup, connection)
        await checkpoints.start(RUNNING, ())
        parked: dict[str, dict[int, str | None]] = {}
        for message in await checkpoints.held():
            if message.error is None and message.stream_id is not None and message.version:
                parked.setdefault(message.stream_id, {})[message.version] = message.event_id
        self._parked, self._recover = parked, bool(parked)

    async def close(self) -> None:
        """Record that the inbox stopped (unless it failed), release its lock, disconnect."""
        checkpoints, self._checkpoints, self._dropped = self._checkpoints, None, False
        try:
            if checkpoints is not None:
                with contextlib.suppress(StoreError):  # closing after the store went away
                    if not self._failed:
                        await checkpoints.finish(STOPPED)
                await checkpoints.close()
        finally:
            await self.source.close()

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

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (safe from a signal handler)."""
        self._stopping.set()

    async def held(self) -> list[HeldMessage]:
        """Every message the inbox holds: parked ones (``error`` None) and dead letters."""
        return await self._open_checkpoints().held()

    # -- receiving -------------------------------------------------------------------------

    async def run(self) -> None:
        """Apply messages as they come, until :meth:`stop`.

        A broker or store that fails is waited out (capped, jittered back-off, each wait
        logged on the ``facta.publishing`` logger); it ends on an :class:`InboxError`, a
        store that is not a facta store or is too new, or a misconfigured broker.
        """
        while not self._stopping.is_set():
            await self._round(self.poll_interval)

    async def catch_up(self, idle: float = 1.0) -> int:
        """Apply messages until none comes for ``idle`` seconds; how many events were applied
        (duplicates and parked messages not counted). With ``Gaps.REFUSE`` a refused message
        keeps coming back until the versions before it came: use :meth:`run` then."""
        start = self.applied
        while not self._stopping.is_set():
            if not await self._round(idle):
                break
        return self.applied - start

    async def _round(self, wait: float) -> bool:
        """Receive one batch (waiting up to ``wait`` s) and apply it; whether one came."""
        if self._checkpoints is None and not self._dropped:
            raise StoreError(f"inbox {self.name!r} is not open; use it as a context manager")
        deliveries: list[Delivery] = []
        self._settled.clear()
        try:
            if self._checkpoints is None:  # lost to a store failure: take the lock again
                await self._reopen_checkpoints()
            checkpoints = self._open_checkpoints()
            if self._recover:
                await self._process(checkpoints, [], recover=True)
                self._recover = False
            deliveries = await self.source.receive(self.batch_size, wait)
            if deliveries:
                await self._process(checkpoints, [item_for(d) for d in deliveries])
        except BrokerUnavailable as e:
            await self._back_off("the broker is unavailable", e, broker=True)
            return True
        except StoreError as e:
            if isinstance(e, _PERMANENT):
                raise
            unsettled = [d for d in deliveries if id(d) not in self._settled]
            with contextlib.suppress(BrokerUnavailable):  # to be delivered again, soon
                await self.source.refuse(unsettled, 0)
            await self._back_off("the store failed", e, broker=False)
            return True
        except InboxError as e:
            self._failed = True
            with contextlib.suppress(StoreError):
                await checkpoints.finish(FAILED, str(e))
            raise
        self._failures = 0
        return bool(deliveries)

    async def _process(
        self, checkpoints: AsyncCheckpoints, items: list[Item], *, recover: bool = False
    ) -> None:
        """Apply a batch; when a handler fails, find the failing event and deal with it as
        ``on_error`` says, keeping what came before it (the projection runner's way)."""
        transactional, rules = checkpoints.transactional, self._rules
        assert rules is not None  # set when the inbox opened
        give_up: dict[Key, str] = {}  # events to put in the dead letters instead
        halt: tuple[Key, str] | None = None  # a parked event to stop before (OnError.STOP)
        size = len(items)
        while True:
            batch = Batch(rules, checkpoints, self._parked, give_up, halt, recover=recover)
            failure = await batch.attempt(items[:size])
            if failure is None or not transactional:
                await self._settle(batch)
            if failure is None:
                if batch.stopped is not None:
                    raise batch.stopped
                items, recover = items[size:], False
                size = len(items)
                if not items:
                    return
                continue
            index, key, cause = failure
            if not transactional:  # what came before the failure was applied and recorded
                items, recover = items[index:], False
                if items and items[0].delivery in batch.acks:  # applied: acknowledged once
                    items[0] = dataclasses.replace(items[0], delivery=None)
                size = len(items)
            elif index > 0:  # rolled back: apply the messages before the failing one alone
                size = index
                continue
            elif size > 1:  # the failing message first: try it alone, it may pass
                size = 1
                continue
            error = f"{type(cause).__name__}: {cause}"
            if self.on_error is OnError.DEAD_LETTER:
                give_up[key] = error
            elif items and key == items[0].key and items[0].delivery is not None:
                raise InboxError(self.name, describe(items[0]), error) from cause
            elif halt is not None and halt[0] == key:  # failed again where it was to stop
                raise InboxError(self.name, describe_key(key), error, parked=True) from cause
            else:  # a parked event the one before it reached: apply that one, stop there
                halt = (key, error)

    async def _settle(self, batch: Batch) -> None:
        """After a commit: count, and tell the broker which messages are done with."""
        self._parked = batch.parked
        self.applied += batch.applied
        self.duplicates += batch.duplicates
        self.dead_lettered += batch.dead_lettered
        self.refused += len(batch.refusals)
        self._settled.update(id(d) for d in (*batch.acks, *batch.refusals))
        if batch.acks:
            await self.source.acknowledge(batch.acks)
        if batch.refusals:
            await self.source.refuse(batch.refusals, self.redelivery_delay)

    def _open_checkpoints(self) -> AsyncCheckpoints:
        if self._checkpoints is None:
            raise StoreError(f"inbox {self.name!r} is not open; use it as a context manager")
        return self._checkpoints

    async def _back_off(self, what: str, error: Exception, *, broker: bool) -> None:
        """Wait (capped, jittered, growing with each failure in a row), then reconnect."""
        self._failures += 1
        delay = random.uniform(0.5, 1.0) * min(self.max_backoff, 0.1 * 2 ** min(self._failures, 20))
        log.warning(
            "inbox %r: %s (%s); retrying in %.1f s (failure %d in a row)",
            self.name,
            what,
            error,
            delay,
            self._failures,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        if self._stopping.is_set():
            return
        try:
            await self.source.close()
            if not broker:
                await self._reopen_checkpoints()
            await self.source.open(self.name)
        except (BrokerUnavailable, StoreError) as e:
            if isinstance(e, _PERMANENT):
                raise
            log.warning("inbox %r: reconnecting failed (%s)", self.name, e)

    async def _reopen_checkpoints(self) -> None:
        """A store failure may have cost the lock's connection: take the lock again, and read
        again what the inbox parked (the failed transaction's outcome is unknown)."""
        checkpoints, self._checkpoints, self._dropped = self._checkpoints, None, True
        if checkpoints is not None:
            with contextlib.suppress(StoreError):
                await checkpoints.close()
        fresh = self.store.recorder.checkpoints(self.name)
        await fresh.open(True, self.poll_interval)  # another inbox may have it: wait
        try:
            await self._start(fresh)
        except BaseException:
            await fresh.close()
            raise
        self._checkpoints, self._dropped = fresh, False


async def _call(function: Callable[..., Any], *args: Any) -> None:
    """Call a hook, awaiting it if it is async (an inbox takes both kinds of projection)."""
    outcome = function(*args)
    if inspect.isawaitable(outcome):
        await outcome
