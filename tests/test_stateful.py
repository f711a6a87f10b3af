"""Random sequences of appends and reads against a model: a dict of lists and one global list.

Runs on the memory and SQLite stores (PostgreSQL runs the same contract suite elsewhere).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import facta
from facta import ANY, NO_STREAM, STREAM_EXISTS, ConcurrencyError, NewEvent, StreamAppend
from facta.testing.events import Happened

STREAMS = 3
streams = st.integers(min_value=0, max_value=STREAMS - 1)
counts = st.integers(min_value=0, max_value=3)
# What an append expects: one of the modes, "current" (the right version) or some version.
expectations = st.sampled_from(["ANY", "NO_STREAM", "STREAM_EXISTS", "current"]) | st.integers(
    min_value=0, max_value=6
)


class StoreMachine(RuleBasedStateMachine):
    """A store under random appends and reads, checked against a plain model."""

    def __init__(self) -> None:
        super().__init__()
        self.store = self.open_store()
        self.streams = [facta.new_id() for _ in range(STREAMS)]
        self.model: dict[str, list[int]] = {stream: [] for stream in self.streams}
        self.log: list[tuple[str, int]] = []  # the global log: (stream id, event number)
        self.numbered = 0
        self.last: tuple[StreamAppend, int] | None = None  # a written append, its version

    def open_store(self) -> facta.EventStore:
        raise NotImplementedError

    def teardown(self) -> None:
        self.store.close()

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
                self.store.append(*append)
            assert raised.value.actual == len(self.model[stream])
            return
        result = self.store.append(*append)
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
        result = self.store.append(*append)
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
        read = self.store.read_all(limit=limit, batch_size=batch_size)
        assert [(e.stream_id, e.data.n) for e in read] == self.log[:limit]

    @precondition(lambda self: len(self.log) > 0)
    @rule(data=st.data())
    def read_all_after_a_checkpoint(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(min_value=0, max_value=len(self.log) - 1))
        checkpoint = list(self.store.read_all(limit=index + 1))[-1].checkpoint
        read = self.store.read_all(checkpoint)
        assert [(e.stream_id, e.data.n) for e in read] == self.log[index + 1 :]

    @invariant()
    def every_stream_is_at_its_models_version(self) -> None:
        for stream, events in self.model.items():
            assert self.store.stream_version(stream) == len(events)


class MemoryStoreMachine(StoreMachine):
    def open_store(self) -> facta.EventStore:
        return facta.connect("memory://")


class SQLiteStoreMachine(StoreMachine):
    def open_store(self) -> facta.EventStore:
        self.folder = Path(tempfile.mkdtemp(prefix="facta-stateful-"))
        return facta.connect(f"sqlite:///{self.folder / 'events.db'}")

    def teardown(self) -> None:
        super().teardown()
        shutil.rmtree(self.folder, ignore_errors=True)


EXAMPLES = settings(max_examples=30, stateful_step_count=25, deadline=None)

TestMemoryStoreAgainstAModel = MemoryStoreMachine.TestCase
TestMemoryStoreAgainstAModel.settings = EXAMPLES
TestSQLiteStoreAgainstAModel = SQLiteStoreMachine.TestCase
TestSQLiteStoreAgainstAModel.settings = EXAMPLES
