"""The contract's model test: random appends and reads, checked against a dict of lists.

A hypothesis state machine drives a sync store, or an async one through :class:`Blocking`
(its calls run on the test's event loop while the machine runs in a worker thread). Each
example writes to fresh streams and reads the global log from where it stood when the
example began, so one store serves every example.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from facta.appending import AppendResult, ExpectedVersion, StreamAppend
from facta.errors import ConcurrencyError
from facta.events import Checkpoint, NewEvent, RecordedEvent
from facta.ids import new_id
from facta.store_async import AsyncEventStore
from facta.testing.events import Happened

__all__ = [
    "MODEL_SETTINGS",
    "Blocking",
    "ModelStore",
    "StoreMachine",
    "check_against_a_model",
    "check_against_a_model_async",
]

T = TypeVar("T")

ANY, NO_STREAM, STREAM_EXISTS = (
    ExpectedVersion.ANY,
    ExpectedVersion.NO_STREAM,
    ExpectedVersion.STREAM_EXISTS,
)
# What every run shares; how many examples, and steps in each, the caller says.
MODEL_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

STREAMS = 3
streams = st.integers(min_value=0, max_value=STREAMS - 1)
counts = st.integers(min_value=0, max_value=3)
# What an append expects: one of the modes, "current" (the right version) or some version.
expectations = st.sampled_from(["ANY", "NO_STREAM", "STREAM_EXISTS", "current"]) | st.integers(
    min_value=0, max_value=6
)


class ModelStore(Protocol):
    """What the machine calls: a sync ``EventStore`` has it, and so has :class:`Blocking`."""

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: int
    ) -> AppendResult: ...

    def append_many(self, appends: Sequence[StreamAppend]) -> list[AppendResult]: ...

    def read_stream(
        self,
        stream_id: str,
        from_version: int = ...,
        to_version: int | None = ...,
        *,
        batch_size: int = ...,
    ) -> Iterable[RecordedEvent]: ...

    def read_all(
        self,
        after: Checkpoint | None = ...,
        *,
        limit: int | None = ...,
        batch_size: int = ...,
    ) -> Iterable[RecordedEvent]: ...

    def stream_version(self, stream_id: str) -> int: ...


class Blocking:
    """An async store seen from another thread: each call runs on the store's event loop."""

    def __init__(self, store: AsyncEventStore, loop: asyncio.AbstractEventLoop) -> None:
        self.store, self.loop = store, loop

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, self.loop).result()

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: int
    ) -> AppendResult:
        return self._run(self.store.append(stream_id, events, expected_version))

    def append_many(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        return self._run(self.store.append_many(appends))

    def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        batch_size: int = 1000,
    ) -> list[RecordedEvent]:
        read = self.store.read_stream(stream_id, from_version, to_version, batch_size=batch_size)
        return self._run(_collect(read))

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        limit: int | None = None,
        batch_size: int = 1000,
    ) -> list[RecordedEvent]:
        read = self.store.read_all(after, limit=limit, batch_size=batch_size)
        return self._run(_collect(read))

    def stream_version(self, stream_id: str) -> int:
        return self._run(self.store.stream_version(stream_id))


async def _collect(events: AsyncIterator[RecordedEvent]) -> list[RecordedEvent]:
    return [event async for event in events]


class StoreMachine(RuleBasedStateMachine):
    """A store under random appends and reads, checked against a plain model."""

    def __init__(self, store: ModelStore, start: Checkpoint) -> None:
        super().__init__()
        self.store, self.start = store, start
        self.streams = [new_id() for _ in range(STREAMS)]
        self.model: dict[str, list[int]] = {stream: [] for stream in self.streams}
        self.log: list[tuple[str, int]] = []  # the global log since start: (stream id, number)
        self.numbered = 0
        self.last: tuple[StreamAppend, int] | None = None  # a written append, its version

    def expected(self, stream: str, expectation: str | int) -> int:
        if isinstance(expectation, int):
            return expectation
        if expectation == "current":
            return len(self.model[stream])
        return {"ANY": ANY, "NO_STREAM": NO_STREAM, "STREAM_EXISTS": STREAM_EXISTS}[expectation]

    def accepts(self, stream: str, expected: int) -> bool:
        current = len(self.model[stream])
        if expected == ANY:
            return True
        if expected == STREAM_EXISTS:
            return current > 0
        return expected == current

    def new_events(self, count: int) -> list[NewEvent]:
        self.numbered += count
        return [NewEvent(Happened(n)) for n in range(self.numbered - count, self.numbered)]

    def record(self, append: StreamAppend) -> None:
        for new in append.events:
            assert isinstance(new, NewEvent)
            assert isinstance(new.data, Happened)
            self.model[append.stream_id].append(new.data.n)
            self.log.append((append.stream_id, new.data.n))

    @rule(index=streams, count=counts, expectation=expectations)
    def append(self, index: int, count: int, expectation: str | int) -> None:
        stream = self.streams[index]
        expected = self.expected(stream, expectation)
        append = StreamAppend(stream, self.new_events(count), expected)
        if not self.accepts(stream, expected):
            with pytest.raises(ConcurrencyError) as raised:
                self.store.append(*append[:3])
            assert raised.value.actual == len(self.model[stream])
            return
        result = self.store.append(*append[:3])
        self.record(append)
        assert (result.version, result.already_appended) == (len(self.model[stream]), False)
        if count:
            self.last = (append, result.version)

    @rule(
        indexes=st.lists(streams, min_size=2, max_size=2, unique=True),
        count=counts,
        expectations=st.lists(expectations, min_size=2, max_size=2),
    )
    def append_many(self, indexes: list[int], count: int, expectations: list[str | int]) -> None:
        appends = [
            StreamAppend(stream, self.new_events(count), self.expected(stream, expectation))
            for stream, expectation in zip(
                [self.streams[i] for i in indexes], expectations, strict=True
            )
        ]
        if not all(self.accepts(a.stream_id, a.expected_version) for a in appends):
            with pytest.raises(ConcurrencyError):
                self.store.append_many(appends)
            return
        results = self.store.append_many(appends)
        for append in appends:
            self.record(append)
        assert [r.version for r in results] == [len(self.model[a.stream_id]) for a in appends]

    @precondition(lambda self: self.last is not None)
    @rule()
    def append_the_last_append_again(self) -> None:
        assert self.last is not None
        append, version = self.last
        result = self.store.append(*append[:3])
        assert (result.version, result.already_appended) == (version, True)

    @rule(
        index=streams,
        start=st.integers(min_value=0, max_value=8),
        stop=st.none() | st.integers(min_value=0, max_value=8),
        batch_size=st.integers(min_value=1, max_value=4),
    )
    def read_stream(self, index: int, start: int, stop: int | None, batch_size: int) -> None:
        stream = self.streams[index]
        read = self.store.read_stream(stream, start, stop, batch_size=batch_size)
        first = max(start, 1)
        last = len(self.model[stream]) if stop is None else min(stop, len(self.model[stream]))
        expected = [(v, self.model[stream][v - 1]) for v in range(first, last + 1)]
        assert [(e.version, e.data.n) for e in read] == expected

    @rule(
        limit=st.none() | st.integers(min_value=0, max_value=10),
        batch_size=st.integers(min_value=1, max_value=5),
    )
    def read_all(self, limit: int | None, batch_size: int) -> None:
        read = self.store.read_all(self.start, limit=limit, batch_size=batch_size)
        assert [(e.stream_id, e.data.n) for e in read] == self.log[:limit]

    @precondition(lambda self: len(self.log) > 0)
    @rule(data=st.data())
    def read_all_after_a_checkpoint(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(min_value=0, max_value=len(self.log) - 1))
        checkpoint = list(self.store.read_all(self.start, limit=index + 1))[-1].checkpoint
        read = self.store.read_all(checkpoint)
        assert [(e.stream_id, e.data.n) for e in read] == self.log[index + 1 :]

    @invariant()
    def every_stream_is_at_its_models_version(self) -> None:
        for stream, events in self.model.items():
            assert self.store.stream_version(stream) == len(events)


def check_against_a_model(store: ModelStore, examples: int, steps: int) -> None:
    """Run ``examples`` runs of up to ``steps`` steps on ``store``, each from the log's end."""
    end = Checkpoint()

    class OnThisStore(StoreMachine):
        def __init__(self) -> None:
            nonlocal end
            for recorded in store.read_all(end):
                end = recorded.checkpoint
            super().__init__(store, end)

    run = settings(MODEL_SETTINGS, max_examples=examples, stateful_step_count=steps)
    run_state_machine_as_test(OnThisStore, settings=run)


async def check_against_a_model_async(store: AsyncEventStore, examples: int, steps: int) -> None:
    """The same on an async store: the machine in a worker thread, the store's calls here."""
    blocking = Blocking(store, asyncio.get_running_loop())
    await asyncio.to_thread(check_against_a_model, blocking, examples, steps)
