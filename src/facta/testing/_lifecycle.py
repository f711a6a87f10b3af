# WARNING: generated from src/facta/testing/_lifecycle_async.py by tools/gen_sync.py; do not edit.
"""The contract's lifecycle tests: deleting, reopening, truncating and pruning streams."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import msgspec
import pytest

from facta.aggregate import Aggregate
from facta.errors import (
    AggregateNotFound,
    ConcurrencyError,
    EventsTruncated,
    FactaError,
    InvalidEvent,
    StreamDeleted,
)
from facta.events import RecordedEvent
from facta.ids import new_id
from facta.lifecycle import Deleted, Pruned, Reopened, Truncated
from facta.projections import Projection, ProjectionRunner, handles
from facta.repository import Repository
from facta.store import EventStore
from facta.testing._concurrency import run_concurrently
from facta.testing._read_model import unique_name
from facta.testing._support import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    happened,
    head,
    log_after,
    numbers,
    projected,
    read,
    snapshot,
)
from facta.testing.events import Happened, Projected

__all__ = ["LifecycleContract"]


class Totals(msgspec.Struct):
    """A ``Counted`` aggregate's snapshot state."""

    total: int


class Counted(Aggregate):
    """Adds up ``Happened`` numbers; a snapshot every 3 events."""

    type_name = "facta.testing.Counted"
    snapshot_every = 3
    snapshot_type = Totals

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.total = 0

    def add(self, *numbers: int) -> None:
        for n in numbers:
            self.record(Happened(n))

    def apply(self, event: object) -> None:
        if isinstance(event, Happened):
            self.total += event.n

    def snapshot_state(self) -> Totals:
        return Totals(self.total)

    def restore_state(self, state: Any) -> None:
        self.total = state.total


class Watcher(Projection[Any]):
    """Lists the ``Projected`` events and deletion markers of its streams, in order."""

    def __init__(self, name: str, streams: set[str]) -> None:
        self.name, self.streams = name, streams
        self.seen: list[tuple[str, int, str]] = []

    def reset(self, connection: Any) -> None:
        self.seen.clear()

    def note(self, event: RecordedEvent) -> None:
        if event.stream_id in self.streams:
            self.seen.append((event.stream_id, event.version, event.type))

    @handles(Projected)
    def projected(self, event: RecordedEvent, connection: Any) -> None:
        self.note(event)

    @handles(Deleted)
    def deleted(self, event: RecordedEvent, connection: Any) -> None:
        self.note(event)


def saved(store: EventStore, *numbers: int) -> Counted:
    """A new ``Counted`` aggregate holding ``numbers``, saved."""
    counted = Counted(new_id())
    counted.add(*numbers)
    Repository(store, Counted).save(counted)
    return counted


def _outcome(call: Any, *args: Any) -> object:
    """What ``call(*args)`` returned, or the facta error it raised."""
    try:
        return call(*args)
    except FactaError as e:
        return e


def places(events: list[RecordedEvent]) -> list[tuple[str, int, str]]:
    """(stream, version, type) of each event read."""
    return [(e.stream_id, e.version, e.type) for e in events]


class LifecycleContract:
    """Deletions, reopenings and truncations keep the log whole and the rules of loads."""

    # -- soft deletion -----------------------------------------------------------------------

    def test_a_soft_deletion_keeps_the_events_and_refuses_loads_and_appends(
        self, store: EventStore
    ) -> None:
        counted = saved(store, 1, 2)
        result = store.delete_stream(counted.id, 2, reason="closed")
        assert result.version == 2
        with pytest.raises(StreamDeleted, match=r"store\.reopen_stream") as raised:
            Repository(store, Counted).load(counted.id)
        assert (raised.value.stream_id, raised.value.hard) == (counted.id, False)
        for expected in (ANY, 2, STREAM_EXISTS):
            with pytest.raises(StreamDeleted):
                store.append(counted.id, happened(3), expected)
        assert numbers(read(store, counted.id)) == [1, 2]  # kept for audit
        info = store.stream_info(counted.id)
        assert info is not None
        assert (info.version, info.deleted_at is not None, info.hard_deleted) == (2, True, False)

    def test_a_deletion_leaves_its_marker_at_its_place_in_the_global_log(
        self, store: EventStore
    ) -> None:
        before, after, deleted = new_id(), new_id(), new_id()
        start = head(store)
        store.append(deleted, happened(1), NO_STREAM)
        store.append(before, happened(1), NO_STREAM)
        result = store.delete_stream(deleted, 1)
        store.append(after, happened(1), NO_STREAM)
        log = log_after(store, start)
        assert places(log) == [
            (deleted, 1, "facta.testing.Happened"),
            (before, 1, "facta.testing.Happened"),
            (deleted, -1, "facta.StreamDeleted"),
            (after, 1, "facta.testing.Happened"),
        ]
        assert log[2].position == result.position
        assert log[2].data == Deleted(hard=False, reuse=False, reason=None)
        assert [e.version for e in read(store, deleted)] == [1]  # markers are not events

    def test_a_reopened_stream_loads_and_takes_appends_again(self, store: EventStore) -> None:
        counted = saved(store, 1, 2)
        start = head(store)
        store.delete_stream(counted.id, ANY)
        store.reopen_stream(counted.id, reason="a mistake")
        repository = Repository(store, Counted)
        loaded = repository.load(counted.id)
        loaded.add(3)
        repository.save(loaded)
        assert (repository.load(counted.id)).total == 6
        store.delete_stream(counted.id, 3)
        assert [(e.version, e.data) for e in log_after(store, start)] == [
            (-1, Deleted()),
            (-2, Reopened("a mistake")),
            (3, Happened(3)),
            (-3, Deleted()),
        ]

    def test_a_load_from_a_snapshot_of_a_deleted_stream_is_refused(self, store: EventStore) -> None:
        counted = saved(store, 1, 2, 3)  # a snapshot at version 3
        assert store.read_snapshots(counted.id, 1)
        store.delete_stream(counted.id, 3)
        with pytest.raises(StreamDeleted):
            Repository(store, Counted).load(counted.id)

    def test_deletions_that_cannot_be_done_are_refused_and_change_nothing(
        self, store: EventStore
    ) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2), NO_STREAM)
        start = head(store)
        with pytest.raises(ConcurrencyError) as conflict:
            store.delete_stream(stream, 1)
        assert (conflict.value.expected, conflict.value.actual) == (1, 2)
        with pytest.raises(ConcurrencyError):
            store.delete_stream(new_id(), ANY)  # a stream with no events
        with pytest.raises(InvalidEvent, match="NO_STREAM"):
            store.delete_stream(stream, NO_STREAM)
        with pytest.raises(InvalidEvent, match="needs hard=True"):
            store.delete_stream(stream, 2, reuse=True)
        with pytest.raises(InvalidEvent, match="not deleted"):
            store.reopen_stream(stream)
        assert log_after(store, start) == []
        store.delete_stream(stream, 2)
        with pytest.raises(StreamDeleted):
            store.delete_stream(stream, ANY)

    # -- hard deletion -----------------------------------------------------------------------

    def test_a_hard_deletion_removes_events_and_snapshots_and_keeps_a_marker(
        self, store: EventStore
    ) -> None:
        counted = saved(store, 1, 2, 3, 4)
        start = head(store)
        store.delete_stream(counted.id, 4, hard=True)
        assert read(store, counted.id) == []
        assert store.read_snapshots(counted.id, 3) == []
        assert counted.id not in [s for s, _ in store.streams()]
        with pytest.raises(StreamDeleted, match="not reused") as raised:
            Repository(store, Counted).load(counted.id)
        assert raised.value.hard
        with pytest.raises(StreamDeleted):
            store.append(counted.id, happened(5), ANY)
        with pytest.raises(InvalidEvent, match="cannot be reopened"):
            store.reopen_stream(counted.id)
        assert store.stream_version(counted.id) == 4
        log = log_after(store, start)
        assert [(e.version, e.data) for e in log] == [(-1, Deleted(hard=True))]

    def test_a_hard_deletion_with_reuse_frees_the_id(self, store: EventStore) -> None:
        counted = saved(store, 1, 2)
        store.delete_stream(counted.id, 2, hard=True, reuse=True)
        repository = Repository(store, Counted)
        with pytest.raises(AggregateNotFound):
            repository.load(counted.id)
        assert store.stream_info(counted.id) is None
        store.append(counted.id, happened(7), NO_STREAM)
        assert [(e.version, e.data.n) for e in read(store, counted.id)] == [(1, 7)]
        store.delete_stream(counted.id, 1, hard=True, reuse=True)
        markers = [e for e in store.read_all(types=["facta.StreamDeleted"])]
        assert [e.version for e in markers if e.stream_id == counted.id] == [-1, -2]

    def test_a_reader_behind_a_hard_deletion_gets_the_marker_not_the_events(
        self, store: EventStore
    ) -> None:
        gone, kept = new_id(), new_id()
        start = head(store)
        store.append(gone, projected(1, 2), NO_STREAM)
        store.append(kept, projected(1), NO_STREAM)
        watcher = Watcher(unique_name("deletions"), {gone, kept})
        with ProjectionRunner(store, watcher) as runner:
            store.delete_stream(gone, 2, hard=True)
            runner.catch_up()
        assert watcher.seen == [
            (kept, 1, "facta.testing.Projected"),
            (gone, -1, "facta.StreamDeleted"),
        ]
        assert places(log_after(store, start)) == watcher.seen

    def test_a_subscription_behind_a_hard_deletion_gets_the_marker_not_the_events(
        self, store: EventStore
    ) -> None:
        gone, kept = new_id(), new_id()
        start = head(store)
        store.append(gone, happened(1, 2), NO_STREAM)
        store.delete_stream(gone, 2, hard=True)
        store.append(kept, happened(1), NO_STREAM)
        taken: list[RecordedEvent] = []
        with store.subscribe(start, poll_interval=0.02) as events:
            for event in events:
                taken.append(event)
                if event.stream_id == kept:
                    break
        assert places(taken) == [
            (gone, -1, "facta.StreamDeleted"),
            (kept, 1, "facta.testing.Happened"),
        ]

    def test_a_truncation_racing_appends_loses_and_repeats_nothing(self, store: EventStore) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2, 3), NO_STREAM)
        calls: list[Any] = [
            partial(store.truncate_stream, stream, 3),
            partial(store.append, stream, happened(4), 3),
        ]
        removed, appended = run_concurrently(calls)
        assert (removed, appended.version) == (2, 4)
        assert [(e.version, e.data.n) for e in read(store, stream)] == [(3, 3), (4, 4)]

    def test_a_deletion_racing_an_append_lets_exactly_one_win(self, store: EventStore) -> None:
        for _ in range(10):
            stream = new_id()
            store.append(stream, happened(1), NO_STREAM)

            appended, deleted = run_concurrently(
                [
                    partial(_outcome, store.append, stream, happened(2), 1),
                    partial(_outcome, store.delete_stream, stream, 1),
                ]
            )
            info = store.stream_info(stream)
            assert info is not None
            if isinstance(appended, FactaError):  # the deletion won
                assert isinstance(appended, StreamDeleted)
                assert not isinstance(deleted, BaseException)
                assert numbers(read(store, stream)) == [1]
                assert info.deleted_at is not None
            else:  # the append won
                assert isinstance(deleted, ConcurrencyError)
                assert numbers(read(store, stream)) == [1, 2]
                assert info.deleted_at is None

    # -- truncation and retention ------------------------------------------------------------

    def test_a_truncated_stream_keeps_its_version_and_the_events_after(
        self, store: EventStore
    ) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2, 3, 4), NO_STREAM)
        start = head(store)
        assert store.truncate_stream(stream, 3) == 2
        assert [e.version for e in read(store, stream)] == [3, 4]
        assert store.stream_version(stream) == 4
        store.append(stream, happened(5), 4)
        info = store.stream_info(stream)
        assert info is not None
        assert (info.first_version, info.version) == (3, 5)
        log = log_after(store, start)
        assert [(e.version, e.data) for e in log] == [(-1, Truncated(3)), (5, Happened(5))]
        assert store.truncate_stream(stream, 2) == 0  # already gone: nothing to do

    def test_an_aggregate_s_stream_is_truncated_only_up_to_its_newest_snapshot(
        self, store: EventStore
    ) -> None:
        counted = saved(store, 1, 2, 3, 4)  # a snapshot at version 4
        store.append(counted.id, happened(5, 6), 4)
        with pytest.raises(InvalidEvent, match="newest snapshot is at version 4"):
            store.truncate_stream(counted.id, 6)
        assert store.truncate_stream(counted.id, 5) == 4
        assert (Repository(store, Counted).load(counted.id)).total == 21
        with pytest.raises(InvalidEvent, match="the stream is at version 6"):
            store.truncate_stream(counted.id, 8)
        plain = saved(store, 1)
        store.append(plain.id, happened(2), 1)
        with pytest.raises(InvalidEvent, match="it has no snapshot"):
            store.truncate_stream(plain.id, 2)

    def test_a_load_that_needs_truncated_events_says_so(self, store: EventStore) -> None:
        counted = saved(store, 1, 2, 3, 4)
        store.truncate_stream(counted.id, 4)
        store.write_snapshot(snapshot(counted.id, 4, b"damaged"))  # replaces the good one
        with pytest.raises(EventsTruncated, match="before version 4"):
            Repository(store, Counted).load(counted.id)

    def test_prune_applies_each_stream_s_retention(self, store: EventStore) -> None:
        by_count, by_age, typed = new_id(), new_id(), saved(store, 1, 2)
        store.append(by_count, happened(1, 2, 3, 4, 5), NO_STREAM)
        store.append(by_age, happened(1, 2), NO_STREAM)
        store.set_retention(by_count, max_count=2)
        store.set_retention(by_age, max_age=timedelta(minutes=1))
        store.set_retention(typed.id, max_count=1)
        info = store.stream_info(by_age)
        assert info is not None
        pruned = store.prune(now=info.deleted_at or _later(read(store, by_age)))
        mine = [p for p in pruned if p.stream_id in {by_count, by_age, typed.id}]
        assert sorted(mine) == sorted(
            [Pruned(by_count, 3), Pruned(by_age, 2), Pruned(typed.id, 0, held_back=1)]
        )
        assert [e.version for e in read(store, by_count)] == [4, 5]
        assert read(store, by_age) == []
        assert (Repository(store, Counted).load(typed.id)).total == 3
        with pytest.raises(InvalidEvent, match="max_count"):
            store.set_retention(by_count, max_count=0)
        with pytest.raises(InvalidEvent, match="holds no events"):
            store.set_retention(new_id(), max_count=1)


def _later(events: list[RecordedEvent]) -> Any:
    """A moment two minutes after the last of ``events`` was recorded."""
    return events[-1].recorded_at + timedelta(minutes=2)
