# WARNING: generated from src/facta/projections/sliced_runner_async.py by tools/gen_sync.py; do not edit.
"""The sliced runner: one of several workers sharing a projection (sync twin generated).

A sliced projection is split into slice ranges (``ranges``, 16 by default), each with its own
checkpoint; every worker process runs an :class:`SlicedRunner` with the projection's
name and holds a fair share of the ranges under leases (see :mod:`facta.slice_leases`).
A worker reads the global log's events of its ranges' slices in the log's order (the same
horizon as ``read_all``: nothing skipped, each stream's versions in order) and applies them
as the plain runner does, moving its ranges' checkpoints in the same transaction. When a
worker joins, the others give back what is above their share; when one dies, its ranges are
taken over once its leases expire. PostgreSQL only.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from facta.errors import LeaseLost
from facta.events import Checkpoint, RecordedEvent
from facta.projections.errors import OnError
from facta.projections.handlers import resolve
from facta.projections.projection import Projection
from facta.projections.runner import ProjectionRunner
from facta.projections.status import REBUILDING, RUNNING, Progress
from facta.records import HeldRange, SlicedStatus
from facta.slices import SLICES, slice_of
from facta.store import EventStore

__all__ = ["SlicedRunner"]

C = TypeVar("C")

log = logging.getLogger("facta.projections")


class SlicedRunner(ProjectionRunner[C]):
    """One worker of a projection shared by several processes (PostgreSQL).

    Start one per process with the same projection (its ``name``) and the same ``ranges``;
    they share the ranges out among themselves. ``lease_seconds`` is how long a worker that
    stops renewing (it died, or hangs) keeps its ranges before the others take them over;
    it must exceed ``2 * poll_interval``, and a batch taking longer loses its ranges (its
    commit is refused, nothing of it kept). ``worker`` names this worker (host, pid and a
    random part by default). Other arguments are the plain runner's.
    """

    def __init__(
        self,
        store: EventStore,
        projection: Projection[C] | Projection[C],
        *,
        ranges: int = 16,
        lease_seconds: float = 10.0,
        worker: str | None = None,
        batch_size: int = 500,
        on_error: OnError = OnError.STOP,
        wait: bool = False,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__(
            store,
            projection,
            batch_size=batch_size,
            on_error=on_error,
            wait=wait,
            poll_interval=poll_interval,
        )
        if not isinstance(ranges, int) or not 1 <= ranges <= SLICES:
            raise ValueError(f"ranges must be an int from 1 to {SLICES}, got {ranges!r}")
        if not lease_seconds > 2 * poll_interval:
            raise ValueError(
                f"lease_seconds ({lease_seconds!r}) must exceed twice poll_interval "
                f"({poll_interval!r}): a waiting worker renews its leases once per poll"
            )
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.leases = store.recorder.slice_leases(self.name, self.worker, ranges, lease_seconds)
        self._checkpoints = self.leases
        self._balance_every = min(poll_interval, lease_seconds / 4)
        self._balanced_at = -float("inf")

    @property
    def held(self) -> list[HeldRange]:
        """The ranges this worker holds now, with their tokens and checkpoints."""
        return list(self.leases.holding)

    def open(self) -> None:
        """Join the projection's workers, create its read model (``setup``, one worker at a
        time), record its ranges and take this worker's share."""
        if self._opened:
            return
        self._handlers, self._types = resolve(
            self.projection, self.projection.handler_names, self.store.codec
        )
        leases = self.leases
        leases.open(self.wait, self.poll_interval)
        try:
            with leases.transaction() as connection:
                leases.lock_setup(connection)
                _call(self.projection.setup, connection)
            leases.start(RUNNING, self._types)
            self._balance()
        except BaseException:
            leases.close()
            raise
        self._opened, self._failed = True, False

    def close(self) -> None:
        """Give the ranges back (the others take them at once) and leave the workers."""
        if not self._opened:
            return
        self._opened = False
        try:
            if not self._failed:
                self.leases.release()
        finally:
            self.leases.close()

    def _balance(self) -> None:
        before = {h.range for h in self.leases.holding}
        self.leases.balance()
        self._balanced_at = time.monotonic()
        after = {h.range for h in self.leases.holding}
        if before != after:
            log.info(
                "projection %r worker %s holds %s",
                self.name,
                self.worker,
                ", ".join(str(r) for r in sorted(after)) or "no range",
            )

    def catch_up(self, progress: Progress | None = None) -> int:
        """Apply every event of the held ranges up to the end of the log; how many.

        Balances first (and again every ``poll_interval`` while it works), so the ranges held
        can change under it; a batch whose range was taken over is rolled back and dropped.
        """
        self._check_open()
        total = self.lag() if progress is not None else 0
        done = 0
        while not self._stopping.is_set():
            if time.monotonic() - self._balanced_at >= self._balance_every:
                self._balance()
            held = self.leases.holding
            if not held:
                break
            self._checkpoint = min(h.checkpoint for h in held)
            try:
                events = self._read(_slices(held))
                fresh = _not_applied(events, held)
                if fresh:
                    self._process(fresh)
                if events and self._checkpoint < events[-1].checkpoint:
                    self._advance(events[-1].checkpoint)  # what it read for others
            except LeaseLost as e:
                log.info("projection %r worker %s: %s", self.name, self.worker, e)
                self._balance()
                continue
            done += len(fresh)
            if progress is not None:
                total = max(total, done)
                progress(done, total)
            if len(events) < self.batch_size:
                break
        return done

    def _advance(self, checkpoint: Checkpoint) -> None:
        """Move the held ranges still behind ``checkpoint`` (they had no event up to it)."""
        with self.leases.transaction() as connection:
            self.leases.save(connection, self._checkpoint, checkpoint)
        self._checkpoint = checkpoint

    def rebuild(self, progress: Progress | None = None) -> int:
        """Empty the read model and put every range back at the start of the log, in one
        transaction that waits for the other workers' batches in hand; then replay the
        ranges this worker holds (the other workers replay theirs)."""
        self._check_open()
        with self.leases.transaction() as connection:
            self.leases.lock_all(connection)
            _call(self.projection.reset, connection)
            self.leases.reset(connection)
            self.leases.finish(REBUILDING)
        self._balance()
        done = self.catch_up(progress)
        self.leases.finish(RUNNING)
        return done

    def status(self) -> SlicedStatus:
        """The projection's state, its live workers, and each range's holder, token,
        checkpoint and lag."""
        self._check_open()
        return self.leases.status()


def _slices(held: list[HeldRange]) -> list[int] | None:
    """The slices of the ranges held; None for all of them (the read needs no filter then)."""
    slices = [s for h in held for s in range(h.range.first, h.range.last + 1)]
    return None if len(slices) == SLICES else slices


def _not_applied(events: list[RecordedEvent], held: list[HeldRange]) -> list[RecordedEvent]:
    """The events past their range's checkpoint (a range taken over late may be behind the
    others: the events read for it are already applied in theirs)."""
    checkpoints: list[Checkpoint | None] = [None] * SLICES
    for h in held:
        for s in range(h.range.first, h.range.last + 1):
            checkpoints[s] = h.checkpoint
    fresh = []
    for event in events:
        checkpoint = checkpoints[slice_of(event.stream_id)]
        if checkpoint is not None and event.checkpoint > checkpoint:
            fresh.append(event)
    return fresh


def _call(function: Callable[..., Any], *args: Any) -> None:
    """Call a hook, awaiting it if it is async."""
    function(*args)
