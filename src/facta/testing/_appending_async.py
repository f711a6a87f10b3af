"""The contract's append tests: expected versions, atomicity, several streams, idempotency."""

from __future__ import annotations

import uuid

import pytest

from facta.appending import AppendResult, StreamAppend
from facta.errors import ConcurrencyError, DuplicateEventId, InvalidEvent
from facta.events import NewEvent
from facta.ids import new_id
from facta.store_async import AsyncEventStore
from facta.testing._support_async import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    assert_nothing_written,
    happened,
    head,
    numbers,
    read,
)
from facta.testing.events import Happened, Opaque, Unregistered

__all__ = ["AsyncAppendContract"]


class AsyncAppendContract:
    """How appends check versions, stay atomic and tell a retry from a conflict."""

    # -- append modes ----------------------------------------------------------------------

    async def test_append_to_a_new_stream_numbers_its_events_from_one(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1, 2, 3), ANY)
        assert [e.version for e in await read(store, stream)] == [1, 2, 3]

    async def test_append_returns_the_new_version_and_the_last_events_position(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), ANY)
        result = await store.append(stream, happened(2, 3), ANY)
        stored = await read(store, stream)
        assert result == AppendResult(stream, 3, stored[-1].position, already_appended=False)

    async def test_append_with_any_writes_to_a_new_and_to_an_existing_stream(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), ANY)
        await store.append(stream, happened(2), ANY)
        assert numbers(await read(store, stream)) == [1, 2]

    async def test_append_with_no_stream_writes_to_a_new_stream(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        result = await store.append(stream, happened(1), NO_STREAM)
        assert result.version == 1

    async def test_append_with_no_stream_to_an_existing_stream_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), ANY)
        start = await head(store)
        with pytest.raises(ConcurrencyError):
            await store.append(stream, happened(2), NO_STREAM)
        await assert_nothing_written(store, start)
        assert numbers(await read(store, stream)) == [1]

    async def test_append_with_stream_exists_to_an_existing_stream_writes(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), ANY)
        result = await store.append(stream, happened(2), STREAM_EXISTS)
        assert result.version == 2

    async def test_append_with_stream_exists_to_a_new_stream_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        start = await head(store)
        with pytest.raises(ConcurrencyError):
            await store.append(stream, happened(1), STREAM_EXISTS)
        await assert_nothing_written(store, start, stream)

    async def test_append_with_the_current_version_writes(self, store: AsyncEventStore) -> None:
        stream = new_id()
        await store.append(stream, happened(1, 2), ANY)
        result = await store.append(stream, happened(3), 2)
        assert result.version == 3
        assert numbers(await read(store, stream)) == [1, 2, 3]

    async def test_append_with_a_stale_version_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1, 2), ANY)
        start = await head(store)
        with pytest.raises(ConcurrencyError):
            await store.append(stream, happened(3, 4), 1)
        await assert_nothing_written(store, start)
        assert await store.stream_version(stream) == 2

    async def test_append_with_a_version_ahead_of_the_stream_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), ANY)
        start = await head(store)
        with pytest.raises(ConcurrencyError):
            await store.append(stream, happened(2), 5)
        await assert_nothing_written(store, start)

    @pytest.mark.parametrize(
        ("expected", "description"),
        [(1, "1"), (NO_STREAM, "NO_STREAM"), (7, "7")],
    )
    async def test_concurrency_error_carries_the_stream_and_both_versions(
        self, store: AsyncEventStore, expected: int, description: str
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1, 2), ANY)
        with pytest.raises(ConcurrencyError) as raised:
            await store.append(stream, happened(3), expected)
        error = raised.value
        assert (error.stream_id, error.expected, error.actual) == (stream, expected, 2)
        assert repr(stream) in str(error)
        assert description in str(error)

    async def test_concurrency_error_on_a_missing_stream_says_it_is_at_version_zero(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        with pytest.raises(ConcurrencyError) as raised:
            await store.append(stream, happened(1), STREAM_EXISTS)
        assert (raised.value.expected, raised.value.actual) == (STREAM_EXISTS, 0)

    async def test_empty_append_writes_nothing_and_returns_the_current_version(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1, 2), ANY)
        start = await head(store)
        result = await store.append(stream, [], 2)
        assert (result.stream_id, result.version, result.already_appended) == (stream, 2, False)
        await assert_nothing_written(store, start)

    async def test_empty_append_to_a_new_stream_leaves_it_missing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        result = await store.append(stream, [], NO_STREAM)
        assert result.version == 0
        assert await store.stream_version(stream) == 0

    async def test_empty_append_still_checks_the_expected_version(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        with pytest.raises(ConcurrencyError):
            await store.append(stream, [], 3)

    async def test_events_of_one_append_get_consecutive_versions_and_increasing_positions(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), ANY)
        await store.append(stream, happened(2, 3, 4), ANY)
        stored = await read(store, stream)
        assert [e.version for e in stored] == [1, 2, 3, 4]
        positions = [e.position for e in stored]
        assert positions == sorted(set(positions))

    async def test_an_append_with_one_invalid_event_writes_none_of_its_events(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        start = await head(store)
        with pytest.raises(InvalidEvent):
            await store.append(stream, [Happened(1), Opaque(object()), Happened(3)], ANY)
        await assert_nothing_written(store, start, stream)

    # -- several streams in one append -----------------------------------------------------

    async def test_append_many_writes_every_stream(self, store: AsyncEventStore) -> None:
        first, second = new_id(), new_id()
        results = await store.append_many(
            [StreamAppend(first, happened(1, 2), NO_STREAM), StreamAppend(second, happened(3), ANY)]
        )
        assert [(r.stream_id, r.version) for r in results] == [(first, 2), (second, 1)]
        assert numbers(await read(store, first)) == [1, 2]
        assert numbers(await read(store, second)) == [3]

    async def test_append_many_with_one_conflicting_stream_writes_to_no_stream(
        self, store: AsyncEventStore
    ) -> None:
        first, second = new_id(), new_id()
        await store.append(second, happened(1), ANY)
        start = await head(store)
        with pytest.raises(ConcurrencyError) as raised:
            await store.append_many(
                [
                    StreamAppend(first, happened(2), NO_STREAM),
                    StreamAppend(second, happened(3), NO_STREAM),
                ]
            )
        assert raised.value.stream_id == second
        await assert_nothing_written(store, start, first)
        assert await store.stream_version(second) == 1

    async def test_append_many_with_one_invalid_event_writes_to_no_stream(
        self, store: AsyncEventStore
    ) -> None:
        first, second = new_id(), new_id()
        start = await head(store)
        with pytest.raises(InvalidEvent):
            await store.append_many(
                [
                    StreamAppend(first, happened(1), ANY),
                    StreamAppend(second, [Unregistered("x")], ANY),
                ]
            )
        await assert_nothing_written(store, start, first, second)

    async def test_append_many_naming_a_stream_twice_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        start = await head(store)
        with pytest.raises(InvalidEvent, match=stream):
            await store.append_many(
                [StreamAppend(stream, happened(1), ANY), StreamAppend(stream, happened(2), ANY)]
            )
        await assert_nothing_written(store, start, stream)

    async def test_append_many_of_nothing_returns_no_results(self, store: AsyncEventStore) -> None:
        assert await store.append_many([]) == []

    # -- idempotent re-append --------------------------------------------------------------

    @pytest.mark.parametrize("expected", [NO_STREAM, ANY])
    async def test_reappending_stored_events_reports_already_appended_and_writes_nothing(
        self, store: AsyncEventStore, expected: int
    ) -> None:
        stream = new_id()
        events = [NewEvent(Happened(1)), NewEvent(Happened(2))]
        first = await store.append(stream, events, expected)
        start = await head(store)
        again = await store.append(stream, events, expected)
        assert again == first._replace(already_appended=True)
        await assert_nothing_written(store, start)
        assert numbers(await read(store, stream)) == [1, 2]

    async def test_reappending_events_in_the_middle_of_a_stream_reports_already_appended(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, happened(1), ANY)
        events = [NewEvent(Happened(2)), NewEvent(Happened(3))]
        first = await store.append(stream, events, 1)
        await store.append(stream, happened(4), ANY)
        again = await store.append(stream, events, 1)
        assert again == first._replace(already_appended=True)
        assert numbers(await read(store, stream)) == [1, 2, 3, 4]

    async def test_reappending_a_multi_stream_append_reports_every_stream_already_appended(
        self, store: AsyncEventStore
    ) -> None:
        appends = [
            StreamAppend(new_id(), [NewEvent(Happened(1))], NO_STREAM),
            StreamAppend(new_id(), [NewEvent(Happened(2)), NewEvent(Happened(3))], NO_STREAM),
        ]
        first = await store.append_many(appends)
        start = await head(store)
        again = await store.append_many(appends)
        assert again == [result._replace(already_appended=True) for result in first]
        await assert_nothing_written(store, start)

    async def test_reappending_stored_events_at_another_expected_version_raises(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        events = [NewEvent(Happened(1))]
        await store.append(stream, happened(0), ANY)
        await store.append(stream, events, 1)
        start = await head(store)
        with pytest.raises(ConcurrencyError):
            await store.append(stream, events, 0)
        await assert_nothing_written(store, start)

    async def test_reappending_partly_stored_events_with_their_version_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        stored = NewEvent(Happened(1))
        await store.append(stream, [stored], NO_STREAM)
        start = await head(store)
        with pytest.raises(ConcurrencyError):
            await store.append(stream, [stored, NewEvent(Happened(2))], NO_STREAM)
        await assert_nothing_written(store, start)

    async def test_reappending_partly_stored_events_with_any_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        stored = NewEvent(Happened(1))
        await store.append(stream, [stored], ANY)
        start = await head(store)
        with pytest.raises(DuplicateEventId):
            await store.append(stream, [stored, NewEvent(Happened(2))], ANY)
        await assert_nothing_written(store, start)

    async def test_appending_an_event_id_stored_in_another_stream_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stored = NewEvent(Happened(1))
        await store.append(new_id(), [stored], ANY)
        other = new_id()
        start = await head(store)
        with pytest.raises(DuplicateEventId) as raised:
            await store.append(other, [stored], ANY)
        assert str(stored.event_id) in str(raised.value)
        await assert_nothing_written(store, start, other)

    async def test_appending_one_event_id_twice_in_one_call_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        event_id = uuid.uuid4()
        start = await head(store)
        with pytest.raises(DuplicateEventId):
            await store.append(
                stream, [NewEvent(Happened(1), event_id), NewEvent(Happened(2), event_id)], ANY
            )
        await assert_nothing_written(store, start, stream)
