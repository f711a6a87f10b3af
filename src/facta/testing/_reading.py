# WARNING: generated from src/facta/testing/_reading_async.py by tools/gen_sync.py; do not edit.
"""The contract's read tests: streams in batches and ranges, the global log, versions, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from facta.codec import Codec
from facta.errors import DecodeError
from facta.events import EventRegistry, Metadata, NewEvent
from facta.ids import new_id
from facta.snapshots import SNAPSHOT_CANDIDATES
from facta.store import EventStore
from facta.testing._support import ANY, happened, head, log_after, numbers, read, snapshot
from facta.testing.events import Happened, Measured, Mismatched, Noted

__all__ = ["ReadContract"]


class ReadContract:
    """What reads yield, in which order, and how they page."""

    # -- reading a stream ------------------------------------------------------------------

    def test_read_stream_of_a_missing_stream_yields_nothing(self, store: EventStore) -> None:
        assert read(store, new_id()) == []

    def test_read_stream_yields_the_streams_events_in_order(self, store: EventStore) -> None:
        stream, other = new_id(), new_id()
        store.append(stream, happened(1, 2), ANY)
        store.append(other, happened(9), ANY)
        store.append(stream, happened(3), ANY)
        stored = read(store, stream)
        assert numbers(stored) == [1, 2, 3]
        assert {e.stream_id for e in stored} == {stream}

    @pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 8])
    def test_read_stream_in_batches_yields_every_event_once(
        self, store: EventStore, batch_size: int
    ) -> None:
        stream = new_id()
        store.append(stream, happened(*range(1, 8)), ANY)
        stored = read(store, stream, batch_size=batch_size)
        assert [e.version for e in stored] == list(range(1, 8))

    @pytest.mark.parametrize(
        ("from_version", "to_version", "versions"),
        [
            (1, None, [1, 2, 3, 4, 5]),
            (3, None, [3, 4, 5]),
            (2, 4, [2, 3, 4]),
            (4, 4, [4]),
            (5, 9, [5]),
            (6, None, []),
            (4, 3, []),
            (0, 1, [1]),
        ],
    )
    def test_read_stream_from_and_to_versions_are_inclusive(
        self,
        store: EventStore,
        from_version: int,
        to_version: int | None,
        versions: list[int],
    ) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2, 3, 4, 5), ANY)
        stored = read(store, stream, from_version, to_version, batch_size=2)
        assert [e.version for e in stored] == versions

    @pytest.mark.parametrize("batch_size", [0, -1])
    def test_read_stream_with_a_batch_size_below_one_raises(
        self, store: EventStore, batch_size: int
    ) -> None:
        with pytest.raises(ValueError, match="batch_size"):
            read(store, new_id(), batch_size=batch_size)

    def test_recorded_events_carry_their_ids_types_and_schema_versions(
        self, store: EventStore
    ) -> None:
        stream = new_id()
        first, second = NewEvent(Happened(1, "one")), NewEvent(Noted("two"))
        store.append(stream, [first, second], ANY)
        stored = read(store, stream)
        assert [(e.event_id, e.type, e.schema_version, e.data) for e in stored] == [
            (first.event_id, "facta.testing.Happened", 1, Happened(1, "one")),
            (second.event_id, "facta.testing.Noted", 2, Noted("two")),
        ]

    def test_plain_events_get_distinct_event_ids(self, store: EventStore) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2, 3), ANY)
        ids = [e.event_id for e in read(store, stream)]
        assert len(set(ids)) == 3

    def test_metadata_round_trips(self, store: EventStore) -> None:
        stream = new_id()
        metadata = Metadata(
            correlation_id=new_id(),
            causation_id=new_id(),
            user={"tenant": "acme", "tags": ["a", "b"], "depth": {"n": 1}, "ratio": 0.5},
        )
        store.append(stream, [NewEvent(Happened(1), metadata=metadata)], ANY)
        assert [e.metadata for e in read(store, stream)] == [metadata]

    def test_events_appended_without_metadata_read_back_with_empty_metadata(
        self, store: EventStore
    ) -> None:
        stream = new_id()
        store.append(stream, happened(1), ANY)
        assert [e.metadata for e in read(store, stream)] == [Metadata()]

    def test_recorded_at_is_timezone_aware_and_close_to_the_append(self, store: EventStore) -> None:
        stream = new_id()
        store.append(stream, happened(1), ANY)
        (stored,) = read(store, stream)
        assert stored.recorded_at.utcoffset() is not None
        assert abs(stored.recorded_at - datetime.now(UTC)).total_seconds() < 3600

    def test_compressed_events_round_trip(self, store: EventStore) -> None:
        stream = new_id()
        original = store.codec
        store.codec = Codec(compress_above=0)
        try:
            store.append(stream, [Happened(1, "x" * 1000), Noted("y")], ANY)
            stored = read(store, stream)
        finally:
            store.codec = original
        assert [e.data for e in stored] == [Happened(1, "x" * 1000), Noted("y")]

    @pytest.mark.parametrize(
        "suffix",
        ["", " with spaces", "-ünïcødé-🙂", "'; DROP TABLE events; --", "%_*?", "\\", "x" * 500],
    )
    def test_any_non_empty_string_is_a_stream_id(self, store: EventStore, suffix: str) -> None:
        stream = new_id() + suffix
        store.append(stream, happened(1), ANY)
        assert [e.stream_id for e in read(store, stream)] == [stream]
        assert store.stream_version(stream) == 1

    # -- the global log --------------------------------------------------------------------

    def test_read_all_yields_new_events_in_append_order_across_streams(
        self, store: EventStore
    ) -> None:
        first, second = new_id(), new_id()
        start = head(store)
        store.append(first, happened(1, 2), ANY)
        store.append(second, happened(3), ANY)
        store.append(first, happened(4), ANY)
        log = log_after(store, start)
        assert [(e.stream_id, e.data.n) for e in log] == [
            (first, 1),
            (first, 2),
            (second, 3),
            (first, 4),
        ]

    def test_read_all_positions_match_the_append_results(self, store: EventStore) -> None:
        start = head(store)
        results = [store.append(new_id(), happened(n), ANY) for n in range(3)]
        assert [e.position for e in log_after(store, start)] == [r.position for r in results]

    def test_read_all_checkpoints_increase_strictly(self, store: EventStore) -> None:
        start = head(store)
        for n in range(4):
            store.append(new_id(), happened(n, n), ANY)
        checkpoints = [start] + [e.checkpoint for e in log_after(store, start)]
        assert checkpoints == sorted(set(checkpoints))

    def test_read_all_after_a_checkpoint_resumes_just_after_it(self, store: EventStore) -> None:
        stream = new_id()
        start = head(store)
        store.append(stream, happened(1, 2, 3, 4), ANY)
        log = log_after(store, start)
        for index, recorded in enumerate(log):
            assert log_after(store, recorded.checkpoint) == log[index + 1 :]

    @pytest.mark.parametrize(("limit", "expected"), [(0, []), (1, [1]), (3, [1, 2, 3])])
    def test_read_all_with_a_limit_yields_at_most_that_many_events(
        self, store: EventStore, limit: int, expected: list[int]
    ) -> None:
        start = head(store)
        store.append(new_id(), happened(1, 2, 3, 4, 5), ANY)
        assert numbers(log_after(store, start, limit=limit, batch_size=2)) == expected

    def test_read_all_with_a_limit_beyond_the_log_yields_the_rest(self, store: EventStore) -> None:
        start = head(store)
        store.append(new_id(), happened(1, 2), ANY)
        assert numbers(log_after(store, start, limit=100)) == [1, 2]

    @pytest.mark.parametrize("batch_size", [1, 2, 5, 6])
    def test_read_all_in_batches_yields_every_event_once(
        self, store: EventStore, batch_size: int
    ) -> None:
        start = head(store)
        store.append(new_id(), happened(1, 2, 3), ANY)
        store.append(new_id(), happened(4, 5), ANY)
        log = log_after(store, start, batch_size=batch_size)
        assert numbers(log) == [1, 2, 3, 4, 5]

    def test_read_all_with_types_yields_only_events_of_those_types(self, store: EventStore) -> None:
        start = head(store)
        stream = new_id()
        store.append(stream, [Happened(1), Noted("a"), Measured(0.5), Happened(2)], ANY)
        log = log_after(store, start, types=["facta.testing.Happened"])
        assert [e.data for e in log] == [Happened(1), Happened(2)]
        log = log_after(store, start, types={"facta.testing.Noted", "facta.testing.Measured"})
        assert [e.data for e in log] == [Noted("a"), Measured(0.5)]

    def test_read_all_with_types_and_a_limit_counts_only_matching_events(
        self, store: EventStore
    ) -> None:
        start = head(store)
        events = [Noted("a"), Happened(1), Noted("b"), Noted("c"), Happened(2), Happened(3)]
        store.append(new_id(), events, ANY)
        log = log_after(store, start, types=["facta.testing.Happened"], limit=2, batch_size=1)
        assert numbers(log) == [1, 2]

    def test_read_all_with_no_types_yields_nothing(self, store: EventStore) -> None:
        start = head(store)
        store.append(new_id(), happened(1), ANY)
        assert log_after(store, start, types=[]) == []

    def test_read_all_with_a_type_nobody_wrote_yields_nothing(self, store: EventStore) -> None:
        start = head(store)
        store.append(new_id(), happened(1), ANY)
        assert log_after(store, start, types=["facta.testing.NeverWritten"]) == []

    # -- versions and streams --------------------------------------------------------------

    def test_stream_version_of_a_missing_stream_is_zero(self, store: EventStore) -> None:
        assert store.stream_version(new_id()) == 0

    def test_stream_version_counts_the_streams_events(self, store: EventStore) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2), ANY)
        store.append(new_id(), happened(3), ANY)
        store.append(stream, happened(4), ANY)
        assert store.stream_version(stream) == 3

    @pytest.mark.parametrize("batch_size", [1, 2, 1000])
    def test_streams_lists_every_stream_with_its_version_in_id_order(
        self, store: EventStore, batch_size: int
    ) -> None:
        mine = {new_id(): 2, new_id(): 1, new_id(): 3}
        for stream, version in mine.items():
            store.append(stream, happened(*range(version)), ANY)
        listed = [item for item in store.streams(batch_size=batch_size)]
        ids = [stream for stream, _ in listed]
        assert ids == sorted(set(ids))
        assert {s: v for s, v in listed if s in mine} == mine

    # -- replaying a stream (the lean path of a load) ---------------------------------------

    @pytest.mark.parametrize("batch_size", [1, 2, 5, 1000])
    def test_replay_stream_yields_pages_of_versions_and_events(
        self, store: EventStore, batch_size: int
    ) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2, 3, 4, 5), ANY)
        store.append(new_id(), happened(9), ANY)
        pages = [p for p in store.replay_stream(stream, batch_size=batch_size)]
        assert all(0 < len(page) <= batch_size for page in pages)
        replayed = [pair for page in pages for pair in page]
        assert replayed == [(v, Happened(v)) for v in range(1, 6)]

    def test_replay_stream_honours_the_version_range(self, store: EventStore) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2, 3, 4, 5), ANY)
        pages = [p for p in store.replay_stream(stream, 2, 4, batch_size=2)]
        assert [version for page in pages for version, _ in page] == [2, 3, 4]

    def test_replay_stream_of_a_missing_stream_yields_nothing(self, store: EventStore) -> None:
        assert [p for p in store.replay_stream(new_id())] == []

    def test_replay_stream_names_the_stream_and_version_that_does_not_decode(
        self, store: EventStore
    ) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2), ANY)
        registry = EventRegistry()
        registry.register(Mismatched, "facta.testing.Happened")
        original = store.codec
        store.codec = Codec(registry)
        try:
            with pytest.raises(DecodeError, match="version 1") as raised:
                [p for p in store.replay_stream(stream)]
            assert repr(stream) in str(raised.value)
        finally:
            store.codec = original

    @pytest.mark.parametrize("batch_size", [1, 2, 5, 1000])
    def test_replay_into_applies_each_event_in_order_and_returns_the_last_version(
        self, store: EventStore, batch_size: int
    ) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2, 3, 4, 5), ANY)
        store.append(new_id(), happened(9), ANY)
        applied: list[object] = []
        last = store.replay_into(stream, applied.append, batch_size=batch_size)
        assert (last, applied) == (5, [Happened(v) for v in range(1, 6)])

    def test_replay_into_honours_the_version_range(self, store: EventStore) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2, 3, 4, 5), ANY)
        applied: list[object] = []
        assert store.replay_into(stream, applied.append, 2, 4, batch_size=2) == 4
        assert applied == [Happened(2), Happened(3), Happened(4)]

    def test_replay_into_a_missing_stream_applies_nothing(self, store: EventStore) -> None:
        applied: list[object] = []
        assert store.replay_into(new_id(), applied.append, 3) == 2
        assert applied == []

    def test_replay_into_stops_where_apply_raises_and_the_store_goes_on(
        self, store: EventStore
    ) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2, 3, 4, 5), ANY)
        applied: list[object] = []

        def apply(event: object) -> None:
            if event == Happened(2):
                raise ValueError("refused")
            applied.append(event)

        with pytest.raises(ValueError, match="refused"):
            store.replay_into(stream, apply, batch_size=1)
        assert applied == [Happened(1)]
        assert store.replay_into(stream, applied.append, 3) == 5

    def test_replay_into_names_the_stream_and_version_that_does_not_decode(
        self, store: EventStore
    ) -> None:
        stream = new_id()
        store.append(stream, happened(1, 2), ANY)
        registry = EventRegistry()
        registry.register(Mismatched, "facta.testing.Happened")
        original = store.codec
        store.codec = Codec(registry)
        applied: list[object] = []
        try:
            with pytest.raises(DecodeError, match="version 1") as raised:
                store.replay_into(stream, applied.append)
            assert repr(stream) in str(raised.value)
            assert applied == []
        finally:
            store.codec = original

    # -- snapshots -------------------------------------------------------------------------

    def test_read_snapshots_of_a_stream_without_any_is_empty(self, store: EventStore) -> None:
        assert store.read_snapshots(new_id()) == []

    def test_snapshots_read_back_newest_first(self, store: EventStore) -> None:
        stream = new_id()
        snapshots = [snapshot(stream, version) for version in (5, 20, 10)]
        for record in snapshots:
            store.write_snapshot(record)
        store.write_snapshot(snapshot(new_id(), 30))
        assert store.read_snapshots(stream) == [snapshots[1], snapshots[2], snapshots[0]]

    def test_read_snapshots_returns_at_most_limit(self, store: EventStore) -> None:
        stream = new_id()
        for version in (1, 2, 3, 4):
            store.write_snapshot(snapshot(stream, version))
        newest = store.read_snapshots(stream, limit=2)
        assert [record.version for record in newest] == [4, 3]

    def test_writing_a_snapshot_at_a_stored_version_replaces_it(self, store: EventStore) -> None:
        stream = new_id()
        store.write_snapshot(snapshot(stream, 3, b"old"))
        store.write_snapshot(snapshot(stream, 3, b"new"))
        assert store.read_snapshots(stream) == [snapshot(stream, 3, b"new")]

    def test_only_the_newest_snapshots_are_kept(self, store: EventStore) -> None:
        stream = new_id()
        for version in range(10, 0, -1):  # newest first: old ones are pruned as they arrive
            store.write_snapshot(snapshot(stream, version))
        for version in range(11, 16):
            store.write_snapshot(snapshot(stream, version))
        kept = store.read_snapshots(stream, limit=100)
        assert [record.version for record in kept] == [15, 14, 13][:SNAPSHOT_CANDIDATES]
