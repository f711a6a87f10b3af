"""The catch-up runner (the sync twin of this module is generated from it).

A runner feeds one projection from the global log after its checkpoint: it reads a batch of
the event types the projection handles (the store skips the others without decoding them),
then calls the handlers and moves the checkpoint in one transaction of the store's database.
If the process dies, the batch is rolled back with the checkpoint, so nothing is applied
twice. One runner per projection at a time: a second one waits (``wait=True``) or raises
``ProjectionLocked``. Use it as a context manager, then ``run()`` (until ``stop()``),
``catch_up()`` or ``rebuild()``.
"""

from __future__ import annotations

import asyncio  # sync: import threading
import contextlib
import inspect  # sync: drop
import logging
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from facta.context import causes
from facta.errors import (
    DecodeError,
    NotAFactaStore,
    SchemaVersionError,
    StoreError,
    UnknownEventType,
    UpcastError,
)
from facta.events import Checkpoint, RecordedEvent
from facta.personal.sealing import redact
from facta.projections.errors import OnError, ProjectionError
from facta.projections.handlers import check_name, resolve, writes_only
from facta.projections.projection import Projection  # sync: drop
from facta.projections.projection_async import AsyncProjection
from facta.projections.status import FAILED, REBUILDING, RUNNING, STOPPED, DeadLetter, Progress
from facta.projections.write import Write, runs, writes_of
from facta.read_ahead import read_ahead  # sync: drop
from facta.store_async import AsyncEventStore
from facta.telemetry import traced_projection_batch

__all__ = ["AsyncProjectionRunner"]

C = TypeVar("C")

log = logging.getLogger("facta.projections")

# How long a running projection waits after the store failed: doubling from the first, up to
# the cap, each drawn between half and all of it (jitter: restarted runners do not all knock
# at once).
_RETRY_FIRST, _RETRY_CAP = 0.1, 5.0


class AsyncProjectionRunner(Generic[C]):
    """Feeds one projection from the global log, one transaction per batch of events.

    Use it as a context manager: entering takes the projection's lock and runs its ``setup``
    hook; leaving releases the lock. The async runner also takes a sync ``Projection`` (its
    handlers are then called directly), handy where the connection is sync anyway (SQLite).
    """

    def __init__(
        self,
        store: AsyncEventStore,
        projection: AsyncProjection[C] | Projection[C],
        *,
        batch_size: int = 500,
        on_error: OnError = OnError.STOP,
        wait: bool = False,
        poll_interval: float = 1.0,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval!r}")
        self.store, self.projection = store, projection
        self.name = check_name(getattr(projection, "name", None))
        self.batch_size, self.on_error = batch_size, OnError(on_error)
        self.wait, self.poll_interval = wait, poll_interval
        self._checkpoints = store.recorder.checkpoints(self.name)
        self._stopping = asyncio.Event()
        self._handlers: dict[type, Callable[..., Any]] = {}
        self._types: tuple[str, ...] = ()
        self._checkpoint = Checkpoint()
        self._opened = self._failed = self._dropped = False

    @property
    def checkpoint(self) -> Checkpoint:
        """The last event applied: the runner goes on just after it."""
        return self._checkpoint

    async def open(self) -> None:
        """Take the projection's lock, create its read model (``setup``), load its checkpoint."""
        if self._opened:
            return
        self._handlers, self._types = resolve(
            self.projection, self.projection.handler_names, self.store.codec
        )
        await self._checkpoints.open(self.wait, self.poll_interval)
        try:
            async with self._checkpoints.transaction() as connection:
                await _call(self.projection.setup, connection)
            self._checkpoint = await self._checkpoints.start(RUNNING, self._types)
        except BaseException:
            await self._checkpoints.close()
            raise
        self._opened, self._failed = True, False

    async def close(self) -> None:
        """Record that the projection stopped (unless it failed) and release its lock."""
        if not self._opened:
            return
        self._opened = False
        try:
            if not self._failed:
                await self._checkpoints.finish(STOPPED)
        finally:
            await self._checkpoints.close()

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
        """Ask :meth:`run` (or a catch-up) to return after the batch in hand; it stays stopped.

        Safe to call from another thread or a signal handler (sync runner). On PostgreSQL a
        runner waiting for new events notices within ``poll_interval``.
        """
        self._stopping.set()

    async def run(self) -> None:
        """Catch up, then follow the log as it grows, until :meth:`stop` is called.

        It rides out a failing database (a lost connection, a restarting server, an
        exhausted pool: a ``StoreError``): it waits, with a capped and jittered back-off,
        logs each retry on the ``facta.projections`` logger, reopens its checkpoints (taking
        the lock again) and goes on from the checkpoint stored. It ends on what waiting cannot
        mend: a handler's failure (as ``on_error`` says), an event that does not decode,
        ``SchemaVersionError``, ``NotAFactaStore``, or ``ProjectionLocked`` (another runner
        took the projection over meanwhile).
        """
        self._check_open()
        failures = 0
        while not self._stopping.is_set():
            try:
                if self._dropped:  # by a failure: open again, at the checkpoint stored
                    await self.open()
                    self._dropped = False
                    log.info("projection %r resumed at checkpoint %s", self.name, self._checkpoint)
                await self.catch_up()
                failures = 0
                if not self._stopping.is_set():
                    await self._checkpoints.wait(self.poll_interval, self._stopping)
            except (SchemaVersionError, NotAFactaStore):
                raise
            except StoreError as e:
                failures += 1
                delay = min(_RETRY_CAP, _RETRY_FIRST * 2 ** min(failures - 1, 30))
                delay = random.uniform(delay / 2, delay)
                log.warning(
                    "projection %r: the store failed (%s); retrying in %.2f s (failure %d)",
                    self.name,
                    e,
                    delay,
                    failures,
                )
                await self._drop_checkpoints()
                await self._pause(delay)

    async def _drop_checkpoints(self) -> None:
        """Close the checkpoints after a failure (the lock goes with their session); the run
        loop opens them again, reading the checkpoint stored."""
        self._opened, self._dropped = False, True
        try:
            await self._checkpoints.close()
        except StoreError as e:
            log.debug("projection %r: closing its checkpoints failed too: %s", self.name, e)

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or until :meth:`stop` is called."""
        with contextlib.suppress(TimeoutError):  # sync: self._stopping.wait(seconds)
            await asyncio.wait_for(self._stopping.wait(), seconds)  # sync: drop

    async def catch_up(self, progress: Progress | None = None) -> int:
        """Apply every event after the checkpoint, up to the end of the log; how many.

        The async runner reads the next batch (on a connection of the store's) while it
        applies this one, so that the database works on it meanwhile.
        """
        self._check_open()
        total = await self.lag() if progress is not None else 0
        done = 0
        ahead = None  # sync: drop
        while not self._stopping.is_set():
            batch = await self._read(ahead=ahead)  # sync: batch = self._read()
            if len(batch) == self.batch_size:  # sync: drop
                ahead = read_ahead(self._fetch(batch[-1].checkpoint))  # sync: drop
            if batch:
                await self._process(batch)
                done += len(batch)
                if progress is not None:
                    total = max(total, done)
                    progress(done, total)
            if len(batch) < self.batch_size:
                break
        return done

    async def rebuild(self, progress: Progress | None = None) -> int:
        """Empty the read model (``reset``), go back to the start of the log and replay it."""
        self._check_open()
        await self._checkpoints.start(REBUILDING, self._types)
        async with self._checkpoints.transaction() as connection:
            await _call(self.projection.reset, connection)
            await self._checkpoints.reset(connection)
        self._checkpoint = Checkpoint()
        done = await self.catch_up(progress)
        await self._checkpoints.start(RUNNING, self._types)
        return done

    async def lag(self) -> int:
        """How many events of the projection's types the log holds after its checkpoint."""
        self._check_open()
        return await self._checkpoints.lag(self._checkpoint, self._types)

    async def dead_letters(self) -> list[DeadLetter]:
        """The events this projection parked (``on_error=OnError.DEAD_LETTER``), in log order."""
        self._check_open()
        return await self._checkpoints.dead_letters()

    def _check_open(self) -> None:
        if not self._opened:
            raise RuntimeError(
                f"projection runner {self.name!r} is not open; use it as a context manager"
            )

    async def _read(
        self,
        slices: list[int] | None = None,  # sync: slices: list[int] | None = None
        ahead: asyncio.Future[list[RecordedEvent]] | None = None,  # sync: drop
    ) -> list[RecordedEvent]:
        """The next batch after the checkpoint (``ahead``, if it was read ahead)."""  # sync: """The next batch after the checkpoint."""
        if not self._types:
            return []
        try:
            if ahead is not None:  # sync: drop
                return await ahead  # sync: drop
            return await self._fetch(self._checkpoint, slices)
        except (DecodeError, UnknownEventType, UpcastError) as e:
            self._failed = True
            message = f"projection {self.name!r} cannot read its next event: {e}"
            await self._checkpoints.finish(FAILED, message)
            raise type(e)(message) from e

    async def _fetch(
        self, after: Checkpoint, slices: list[int] | None = None
    ) -> list[RecordedEvent]:
        """The batch after ``after``."""
        return [
            event
            async for event in self.store.read_all(
                after,
                limit=self.batch_size,
                types=self._types,
                batch_size=self.batch_size,
                slices=slices,
            )
        ]

    async def _process(self, events: list[RecordedEvent]) -> None:
        """Commit a batch; when a handler fails, isolate the failing event and deal with it."""
        transactional = self._checkpoints.transactional
        size = len(events)
        while events:
            failure = await self._commit(events[:size])
            if failure is None:
                events = events[size:]
                size = len(events)
                continue
            index, cause = failure
            if not transactional:  # the events before the failure were applied and saved
                events, index = events[index:], 0
            if index > 0:  # rolled back: commit the events before the failure on their own
                size = index
            elif size > 1:  # the failing event comes first: try it alone, it may pass
                size = 1
            else:
                await self._give_up(events[0], cause)
                events = events[1:]
                size = len(events)

    @traced_projection_batch
    async def _commit(self, events: list[RecordedEvent]) -> tuple[int, Exception] | None:
        """Apply events and move the checkpoint in one transaction; where it failed, if it did.

        The writes handlers return are sent together (one ``executemany`` per run of the same
        SQL), and a pipelined projection's batch runs in pipeline mode. If that fails other
        than by a handler raising, the batch (rolled back) runs again statement by statement,
        each write executed as its handler returns it, so that a failing statement is pinned
        on its event.
        """
        if self._checkpoints.transactional:
            pipelined = getattr(self.projection, "pipelined", False)
            try:
                return await self._apply(events, pipelined=pipelined, batched=True)
            except _Unpinned as e:
                log.debug(
                    "projection %r: a batch's writes failed (%s); again, one by one",
                    self.name,
                    e.__cause__,
                )
            except Exception as e:
                if not pipelined:
                    raise
                log.debug(
                    "projection %r: a pipelined batch failed (%s); again, one by one", self.name, e
                )
        return await self._apply(events, pipelined=False, batched=False)

    async def _apply(
        self, events: list[RecordedEvent], *, pipelined: bool, batched: bool
    ) -> tuple[int, Exception] | None:
        handlers = self._handlers
        before = self._checkpoint
        transactional = self._checkpoints.transactional
        queued: list[Write] = []  # batched: the writes returned and not sent yet
        try:
            async with (
                self._checkpoints.transaction() as connection,
                _pipeline(connection, pipelined),
            ):
                with causes() as cause:  # what a handler appends, its event caused
                    for index, event in enumerate(events):
                        handler = handlers.get(type(event.data))
                        if handler is None:  # a renamed type decoding into an unhandled class
                            continue
                        if queued and not writes_only(handler):  # it may see or follow them
                            await _send(connection, queued)
                            queued = []
                        try:
                            cause(event)
                            outcome = handler(event, connection)
                            if inspect.isawaitable(outcome):  # sync: drop
                                outcome = await outcome  # sync: drop
                            writes = [] if outcome is None else writes_of(outcome)
                            if writes and not transactional:
                                raise TypeError(
                                    "it returned writes, but this store has no database to send "
                                    "them to; update the read model in the handler instead"
                                )
                            if batched:
                                queued += writes
                            else:
                                for write in writes:
                                    await _execute(connection, write)
                        except Exception as e:
                            if transactional:
                                raise _Failed(index, e) from e
                            if index:
                                after = events[index - 1].checkpoint
                                await self._checkpoints.save(connection, before, after)
                                self._checkpoint = after
                            return index, e
                if queued:
                    await _send(connection, queued)
                await self._checkpoints.save(connection, before, events[-1].checkpoint)
        except _Failed as failed:
            return failed.index, failed.cause
        self._checkpoint = events[-1].checkpoint
        return None

    async def _give_up(self, event: RecordedEvent, cause: Exception) -> None:
        if self.on_error is OnError.DEAD_LETTER:  # stored without personal data in it
            error = redact(f"{type(cause).__name__}: {cause}", event.data)
            async with self._checkpoints.transaction() as connection:
                await self._checkpoints.park(connection, event, error)
                await self._checkpoints.save(connection, self._checkpoint, event.checkpoint)
            self._checkpoint = event.checkpoint
            log.warning(
                "projection %r parked event %r (stream %r version %d, position %d): %s",
                self.name,
                event.type,
                event.stream_id,
                event.version,
                event.position,
                error,
            )
            return
        failure = ProjectionError(self.name, event, cause)
        self._failed = True
        await self._checkpoints.finish(FAILED, redact(str(failure), event.data))
        raise failure from cause


async def _send(connection: Any, writes: list[Write]) -> None:
    """Send queued writes, one ``executemany`` per run of the same SQL; ``_Unpinned`` if one
    fails (which event's write failed is not known)."""
    try:
        executemany = getattr(connection, "executemany", None)
        if executemany is not None:  # sqlite3
            for sql, params in runs(writes):
                executemany(sql, params)
            return
        async with connection.cursor() as cursor:  # psycopg: pipelined by executemany
            for sql, params in runs(writes):
                await cursor.executemany(sql, params)
    except Exception as e:
        raise _Unpinned from e


async def _execute(connection: Any, write: Write) -> None:
    """Execute one write (sqlite3 or psycopg, sync or async)."""
    sql, params = write.sql, write.params
    outcome = connection.execute(sql, params)  # sync: connection.execute(sql, params)
    if inspect.isawaitable(outcome):  # sync: drop
        await outcome  # sync: drop


def _pipeline(connection: Any, pipelined: bool) -> Any:
    """The connection's pipeline mode (psycopg's ``pipeline()``) if asked and it has one."""
    pipeline = getattr(connection, "pipeline", None) if pipelined else None
    return contextlib.nullcontext() if pipeline is None else pipeline()


async def _call(function: Callable[..., Any], *args: Any) -> None:
    """Call a hook, awaiting it if it is async (the async runner takes both kinds)."""
    outcome = function(*args)  # sync: function(*args)
    if inspect.isawaitable(outcome):  # sync: drop
        await outcome  # sync: drop


class _Unpinned(Exception):
    """Queued writes failed: the batch rolls back and runs again one statement at a time."""


class _Failed(Exception):
    """Carries a handler's failure out of the transaction, which then rolls back."""

    def __init__(self, index: int, cause: Exception) -> None:
        super().__init__(index, cause)
        self.index, self.cause = index, cause
