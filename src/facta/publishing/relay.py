"""The relay: a named, checkpointed reader of the global log that publishes to a broker.

Each batch of events is read after the relay's checkpoint, sent to the broker with many
messages in flight, and the checkpoint moves past the events the broker acknowledged (all
earlier ones included) only then: delivery is at least once, in the log's order. A relay that
dies resends at most the batch in hand, which brokers with de-duplication by message id (NATS
JetStream) or a checkpoint of their own (Redis) take only once. One relay per name runs at a
time (the lock projections have); a broker or store that is unreachable is retried with
capped, jittered back-off, each retry logged on the ``facta.publishing`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Collection
from types import TracebackType
from typing import Self

from facta.context import TRACEPARENT
from facta.errors import NotAFactaStore, SchemaVersionError, StoreError
from facta.events import Checkpoint
from facta.publishing.broker import Broker, BrokerUnavailable, Message, SubjectRule, message_for
from facta.recorder_async import AsyncCheckpoints
from facta.records import RUNNING, STOPPED, StoredEvent, check_name
from facta.store_async import AsyncEventStore
from facta.telemetry import relay_batch

__all__ = ["Relay"]

log = logging.getLogger("facta.publishing")

# Store errors a relay does not wait out: they need a person (an upgrade, a wrong URL).
_PERMANENT = (NotAFactaStore, SchemaVersionError)


class Relay:
    """Publishes the store's events to ``broker`` under ``name``; use it as a context manager.

    ``types`` keeps only those type names; ``prefix`` or ``subject`` choose where each event
    goes (``<prefix>.<type>.<stream>`` by default). ``run()`` publishes until :meth:`stop`;
    ``catch_up()`` until the end of the log.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        broker: Broker,
        *,
        name: str,
        prefix: str = "facta",
        subject: SubjectRule | None = None,
        types: Collection[str] | None = None,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        max_backoff: float = 30.0,
        wait: bool = False,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if not poll_interval > 0 or not max_backoff > 0:
            raise ValueError("poll_interval and max_backoff must be > 0 seconds")
        self.store, self.broker, self.name = store, broker, check_name(name)
        self.prefix, self.subject = prefix, subject
        self.types = None if types is None else tuple(sorted(set(types)))
        self.batch_size, self.poll_interval = batch_size, poll_interval
        self.max_backoff, self.wait = max_backoff, wait
        self.checkpoint = Checkpoint()
        self.published = 0  # events acknowledged by the broker since the relay opened
        self._checkpoints: AsyncCheckpoints | None = None
        self._stored = Checkpoint()  # the checkpoint as the store has it
        self._stopping = asyncio.Event()
        self._failures = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Take the relay's lock, load its checkpoint and connect to the broker."""
        if self._checkpoints is not None:
            return
        checkpoints = self.store.recorder.checkpoints(self.name)
        await checkpoints.open(self.wait, self.poll_interval)
        try:
            self._stored = self.checkpoint = await checkpoints.start(RUNNING, self.types or ())
            await self.broker.open()
            if self.broker.keeps_checkpoints:  # the broker's word is the truth
                self.checkpoint = await self.broker.checkpoint(self.name) or Checkpoint()
        except BaseException:
            await checkpoints.close()
            raise
        self._checkpoints = checkpoints

    async def close(self) -> None:
        """Record that the relay stopped, release its lock and disconnect."""
        checkpoints, self._checkpoints = self._checkpoints, None
        try:
            if checkpoints is not None:
                with contextlib.suppress(StoreError):  # closing after the store went away
                    await checkpoints.finish(STOPPED)
                await checkpoints.close()
        finally:
            await self.broker.close()

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

    # -- publishing ------------------------------------------------------------------------

    async def run(self) -> None:
        """Publish the log, then each new event as it commits, until :meth:`stop`."""
        while not self._stopping.is_set():
            await self.catch_up()
            if not self._stopping.is_set():
                waiting = asyncio.ensure_future(
                    self.store.recorder.wait_for_events(self.poll_interval)
                )
                stopping = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                for task in (waiting, stopping):
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StoreError):
                    await waiting  # a failed wait is met again by the next read
                with contextlib.suppress(asyncio.CancelledError):
                    await stopping

    async def catch_up(self) -> int:
        """Publish every event after the checkpoint, up to the end of the log; how many.

        Unavailable brokers and stores are waited out (with back-off) until :meth:`stop`.
        """
        start = self.published
        while not self._stopping.is_set():
            try:
                complete = await self._batch()
            except BrokerUnavailable as e:
                await self._back_off("the broker is unavailable", e, broker=True)
                continue
            except StoreError as e:
                if isinstance(e, _PERMANENT):
                    raise
                await self._back_off("the store failed", e, broker=False)
                continue
            self._failures = 0
            if complete:
                break
        return self.published - start

    async def _batch(self) -> bool:
        """Publish one batch; whether it reached the end of the log."""
        checkpoints = self._open_checkpoints()
        rows = await self.store.recorder.read_all(self.checkpoint, self.types, self.batch_size)
        if not rows:
            return True
        with relay_batch(self, rows) as batch:  # a span and the lag, while telemetry is on
            messages = [self._message(row) for row in rows]
            acknowledged = await self.broker.publish(self.name, messages)
            batch.acknowledged(rows, acknowledged)
            if acknowledged:
                after = rows[acknowledged - 1].checkpoint
                async with checkpoints.transaction() as connection:
                    await checkpoints.save(connection, self._stored, after)
                self._stored = self.checkpoint = after
                self.published += acknowledged
        if acknowledged < len(rows):
            raise BrokerUnavailable(
                f"the broker acknowledged {acknowledged} of {len(rows)} messages"
            )
        return len(rows) < self.batch_size

    def _message(self, row: StoredEvent) -> Message:
        metadata = self.store.codec.decode_metadata(row.metadata)
        message = message_for(
            row,
            metadata.correlation_id,
            metadata.causation_id,
            prefix=self.prefix,
            subject=self.subject,
        )
        trace = metadata.user.get(TRACEPARENT)  # the span the event was appended in
        if isinstance(trace, str):
            message.headers[TRACEPARENT] = trace
        return message

    def _open_checkpoints(self) -> AsyncCheckpoints:
        if self._checkpoints is None:
            raise StoreError(f"relay {self.name!r} is not open; use it as a context manager")
        return self._checkpoints

    async def _back_off(self, what: str, error: Exception, *, broker: bool) -> None:
        """Wait (capped, jittered, growing with each failure in a row), then reconnect."""
        self._failures += 1
        delay = random.uniform(0.5, 1.0) * min(self.max_backoff, 0.1 * 2 ** min(self._failures, 20))
        log.warning(
            "relay %r: %s (%s); retrying in %.1f s (failure %d in a row)",
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
            if broker:
                await self.broker.close()
                await self.broker.open()
                if self.broker.keeps_checkpoints:
                    self.checkpoint = await self.broker.checkpoint(self.name) or Checkpoint()
            else:
                await self._reopen_checkpoints()
        except (BrokerUnavailable, StoreError) as e:
            if isinstance(e, _PERMANENT):
                raise
            log.warning("relay %r: reconnecting failed (%s)", self.name, e)

    async def _reopen_checkpoints(self) -> None:
        """A store failure may have cost the lock's connection: take the lock again."""
        checkpoints, self._checkpoints = self._checkpoints, None
        if checkpoints is not None:
            with contextlib.suppress(StoreError):
                await checkpoints.close()
        fresh = self.store.recorder.checkpoints(self.name)
        await fresh.open(True, self.poll_interval)  # another relay may have it: wait
        try:
            self._stored = await fresh.start(RUNNING, self.types or ())
            if not self.broker.keeps_checkpoints:
                self.checkpoint = self._stored
        except BaseException:
            await fresh.close()
            raise
        self._checkpoints = fresh
