"""The contract's bad-input tests: each mistake gets its own FactaError, and nothing is written."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest

from facta.codec import Codec
from facta.errors import DecodeError, EventTooLarge, InvalidEvent, InvalidStreamId, UnknownEventType
from facta.events import EventRegistry, Metadata, NewEvent
from facta.ids import new_id
from facta.store_async import AsyncEventStore
from facta.testing._support_async import (
    ANY,
    assert_nothing_written,
    happened,
    head,
    log_after,
    numbers,
    read,
)
from facta.testing.events import Happened, Measured, Mismatched, Opaque, Unregistered

__all__ = ["AsyncBadInputContract"]


class AsyncBadInputContract:
    """How the store refuses what it cannot store or read, naming the stream."""

    @pytest.mark.parametrize("expected", ["1", 1.0, True, None, -3])
    async def test_append_with_an_invalid_expected_version_raises_and_writes_nothing(
        self, store: AsyncEventStore, expected: Any
    ) -> None:
        stream = new_id()
        start = await head(store)
        with pytest.raises(InvalidEvent, match="expected version") as raised:
            await store.append(stream, happened(1), expected)
        assert repr(stream) in str(raised.value)
        await assert_nothing_written(store, start, stream)

    @pytest.mark.parametrize(
        "stream_id", ["", "a\x00b", "lone \ud800 surrogate", 5, None, b"bytes", uuid.UUID(int=1)]
    )
    async def test_append_to_an_invalid_stream_id_raises_and_writes_nothing(
        self, store: AsyncEventStore, stream_id: Any
    ) -> None:
        start = await head(store)
        with pytest.raises(InvalidStreamId) as raised:
            await store.append(stream_id, happened(1), ANY)
        if stream_id:
            assert repr(stream_id) in str(raised.value)
        await assert_nothing_written(store, start)

    @pytest.mark.parametrize("stream_id", ["", "a\x00b", "lone \ud800 surrogate", 5, None])
    async def test_reading_an_invalid_stream_id_raises(
        self, store: AsyncEventStore, stream_id: Any
    ) -> None:
        with pytest.raises(InvalidStreamId):
            await read(store, stream_id)
        with pytest.raises(InvalidStreamId):
            await store.stream_version(stream_id)

    async def test_append_of_an_unregistered_event_class_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        start = await head(store)
        with pytest.raises(InvalidEvent) as raised:
            await store.append(stream, [Happened(1), Unregistered("x")], ANY)
        assert "Unregistered" in str(raised.value)
        assert repr(stream) in str(raised.value)
        await assert_nothing_written(store, start, stream)

    @pytest.mark.parametrize(
        "event",
        [
            Opaque(object()),
            Opaque(1 + 2j),
            Opaque("\ud800"),
            Measured(math.nan),
            Measured(math.inf),
            Happened("not an int"),  # type: ignore[arg-type]
        ],
        ids=["object", "complex", "lone-surrogate", "nan", "infinity", "wrong-type"],
    )
    async def test_append_of_a_value_that_does_not_round_trip_raises_and_writes_nothing(
        self, store: AsyncEventStore, event: object
    ) -> None:
        stream = new_id()
        start = await head(store)
        with pytest.raises(InvalidEvent) as raised:
            await store.append(stream, [event], ANY)
        assert repr(stream) in str(raised.value)
        assert "facta.testing." in str(raised.value)
        await assert_nothing_written(store, start, stream)

    async def test_append_with_unencodable_metadata_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        start = await head(store)
        metadata = Metadata(user={"key": object()})
        with pytest.raises(InvalidEvent, match="metadata") as raised:
            await store.append(stream, [NewEvent(Happened(1), metadata=metadata)], ANY)
        assert repr(stream) in str(raised.value)
        await assert_nothing_written(store, start, stream)

    async def test_append_of_an_event_over_the_size_limit_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        start = await head(store)
        original = store.codec
        store.codec = Codec(max_event_size=100)
        try:
            with pytest.raises(EventTooLarge) as raised:
                await store.append(stream, [Happened(1), Happened(2, "x" * 100)], ANY)
        finally:
            store.codec = original
        assert (raised.value.stream_id, raised.value.type_name) == (
            stream,
            "facta.testing.Happened",
        )
        await assert_nothing_written(store, start, stream)

    @pytest.mark.parametrize(
        "events",
        [Happened(1), "abc", (Happened(n) for n in range(2)), None],
        ids=["one-event", "str", "generator", "none"],
    )
    async def test_append_of_something_other_than_a_sequence_raises_and_writes_nothing(
        self, store: AsyncEventStore, events: Any
    ) -> None:
        stream = new_id()
        start = await head(store)
        with pytest.raises(InvalidEvent, match="sequence"):
            await store.append(stream, events, ANY)
        await assert_nothing_written(store, start, stream)

    async def test_append_of_a_new_event_whose_id_is_no_uuid_raises_and_writes_nothing(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        start = await head(store)
        bad = NewEvent(Happened(1), event_id="not-a-uuid")  # type: ignore[arg-type]
        with pytest.raises(InvalidEvent, match="not-a-uuid"):
            await store.append(stream, [bad], ANY)
        await assert_nothing_written(store, start, stream)

    async def test_reading_an_event_of_an_unknown_type_raises_naming_the_stream(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        start = await head(store)
        await store.append(stream, happened(1), ANY)
        original = store.codec
        store.codec = Codec(EventRegistry())
        try:
            with pytest.raises(UnknownEventType, match=r"facta\.testing\.Happened") as raised:
                await read(store, stream)
            assert repr(stream) in str(raised.value)
            with pytest.raises(UnknownEventType, match=stream):
                await log_after(store, start)
        finally:
            store.codec = original
        assert numbers(await read(store, stream)) == [1]

    async def test_reading_stored_data_that_does_not_decode_raises_naming_the_stream(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        start = await head(store)
        await store.append(stream, happened(1), ANY)
        registry = EventRegistry()
        registry.register(Mismatched, "facta.testing.Happened")
        original = store.codec
        store.codec = Codec(registry)
        try:
            with pytest.raises(DecodeError, match="Mismatched") as raised:
                await read(store, stream)
            assert repr(stream) in str(raised.value)
            with pytest.raises(DecodeError, match=stream):
                await log_after(store, start)
        finally:
            store.codec = original
        assert numbers(await read(store, stream)) == [1]
