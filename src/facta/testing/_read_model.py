"""The read model the contract's projections fill, and the gate that holds an append open.

Pure Python, shared by the sync and async suites: the read model is a dict in the test, so it
works the same on every backend (the handlers get the store's connection and leave it alone).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field

from facta.events import RecordedEvent

__all__ = ["HOLD", "PATIENCE", "Gate", "ReadModel", "Refused", "unique_name"]

# How long a test waits for another thread or task before going on regardless: a backend
# that gets it wrong then fails the test's assertions instead of hanging it.
PATIENCE = 30.0
# How long a held writer keeps its transaction open for the other writers and readers to try
# to pass it. Nothing is asserted about what they manage in that time.
HOLD = 0.3


def unique_name(kind: str) -> str:
    """A projection name no other test uses: checkpoints never meet on a shared store."""
    return f"contract-{kind}-{uuid.uuid4().hex[:12]}"


class Refused(Exception):
    """What a read model raises for an event it was told to refuse."""


@dataclass
class ReadModel:
    """What a projection applied of its streams' events: ``applied[(stream, version)] = n``.

    Idempotent, as a read model outside the store's transaction must be (after a failure a
    runner may apply an event again); ``calls`` lists every application in order. Events of
    other streams (other tests', on a shared store) are ignored.
    """

    streams: Collection[str]
    refuse: set[int] = field(default_factory=set)
    gate: Gate | None = None
    applied: dict[tuple[str, int], int] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)
    events: list[RecordedEvent] = field(default_factory=list)
    resets: int = 0

    def apply(self, event: RecordedEvent) -> None:
        """Apply one event, or raise ``Refused`` if its number is refused."""
        if event.stream_id not in self.streams:
            return
        self.calls.append((event.stream_id, event.version))
        if event.data.n in self.refuse:
            raise Refused(f"refused event {event.data.n} of stream {event.stream_id!r}")
        self.applied[event.stream_id, event.version] = event.data.n
        self.events.append(event)

    def reset(self) -> None:
        """Empty the read model, as a rebuild asks."""
        self.applied.clear()
        self.resets += 1


class Gate:
    """Holds the first append to ``stream_id`` in its transaction until :meth:`release`."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.entered = threading.Event()
        self.released = threading.Event()
        self.held = False  # whether a transaction was really held open

    def holds(self, event: RecordedEvent) -> bool:
        """Whether the handler applying ``event`` should wait in the gate."""
        return event.stream_id == self.stream_id and not (
            self.entered.is_set() or self.released.is_set()
        )

    def release(self) -> None:
        """Let the held writer commit; the gate holds nothing afterwards."""
        self.released.set()

    def hold(self) -> None:
        """Wait in a sync handler until released (``PATIENCE`` at most).

        A handler running on an event loop's thread (an async store whose append runs its
        sync handlers inline, as memory does) would stall everyone: it goes straight on.
        """
        self.entered.set()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.held = True
            self.released.wait(PATIENCE)

    async def hold_async(self) -> None:
        """Wait in an async handler until released (``PATIENCE`` at most)."""
        self.entered.set()
        self.held = True
        deadline = time.monotonic() + PATIENCE
        # Released from another thread (the test's): a threading.Event, polled.
        while not self.released.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
