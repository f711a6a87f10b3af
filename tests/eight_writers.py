"""Eight writers appending every shape of append while one reader tails the global log: the
stress test of the skip-free log, on the primary (test_postgres_global_order) and on a
replica (test_postgres_replicas)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import facta
from facta.appending import ExpectedVersion, StreamAppend
from facta.events import Checkpoint, NewEvent, RecordedEvent
from facta.testing.events import Happened

HOT = ("hot-a", "hot-b", "hot-c")  # streams every writer appends to
STRESS_SECONDS = 8.0  # how long the writers of the stress test write


def writer(store: facta.EventStore, number: int, until: float, ids: list[uuid.UUID]) -> None:
    """Appends of every shape until ``until``: its own stream at exact versions, a hot stream
    with ANY, and several streams at once (hot ones in any order, and a new one)."""
    rng = random.Random(number)
    own = f"writer-{number}"
    i = 0
    while time.monotonic() < until:
        shape = rng.randrange(4)
        if shape < 2:
            stream = own if shape == 0 else rng.choice(HOT)
            events = [event(number, i, k) for k in range(rng.randint(1, 3))]
            expected = store.stream_version(own) if shape == 0 else ExpectedVersion.ANY
            store.append(stream, events, expected)
        else:
            streams = [*rng.sample(HOT, rng.randint(1, 3)), f"new-{number}-{i}"]
            rng.shuffle(streams)
            events = [event(number, i, k) for k in range(len(streams))]
            store.append_many(
                [StreamAppend(s, [e], facta.ANY) for s, e in zip(streams, events, strict=True)]
            )
        ids.extend(e.event_id for e in events)
        i += 1


def event(writer: int, append: int, index: int) -> NewEvent:
    return NewEvent(Happened(writer * 100_000 + append * 10 + index))


def out_of_order(events: list[RecordedEvent]) -> int:
    """How many events come after a later version of their own stream."""
    newest: dict[str, int] = {}
    count = 0
    for event in events:
        if event.version <= newest.get(event.stream_id, 0):
            count += 1
        newest[event.stream_id] = max(event.version, newest.get(event.stream_id, 0))
    return count


def tail_eight_writers(store: facta.EventStore) -> tuple[set[uuid.UUID], list[RecordedEvent]]:
    """Run eight writers for ``STRESS_SECONDS`` while a reader tails ``store``'s log in pages
    of 7; the ids written and the events the reader saw until the writers stopped."""
    written: list[list[uuid.UUID]] = [[] for _ in range(8)]
    done = threading.Event()
    seen: list[RecordedEvent] = []

    def tail() -> None:
        checkpoint = Checkpoint()
        while not done.is_set():
            store.recorder.wait_for_events(0.05)
            for event in store.read_all(checkpoint, batch_size=7):
                seen.append(event)
                checkpoint = event.checkpoint

    until = time.monotonic() + STRESS_SECONDS
    with ThreadPoolExecutor(9) as pool:
        reader = pool.submit(tail)
        writers = [pool.submit(writer, store, n, until, written[n]) for n in range(8)]
        for future in writers:
            future.result()
        done.set()
        reader.result()
    return {i for ids in written for i in ids}, seen
