"""Hostile and large input on PostgreSQL: values are only ever parameters, sizes are checked first."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

import facta
from facta.backends.postgres.recorder import PostgresRecorder
from facta.codec import ZLIB, Codec
from facta.errors import EventTooLarge, InvalidEvent, InvalidStreamId
from facta.events import EventRegistry, Metadata, NewEvent, event
from facta.testing.events import Happened

pytestmark = pytest.mark.postgres

PATIENCE = 60.0  # seconds a read waits for other sessions' transactions to end
UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/nowhere"  # any database call would fail
MiB = 1024 * 1024

HOSTILE_IDS = [
    "'; DROP TABLE facta_events; --",
    'quote"double',
    "back\\slash\\'",
    "$1 %s %(x)s {schema}",
    "ünïcödé 事件 🚀 \u202eltr",
    "a" * 1000,  # the longest a stream id may be (facta.ids.MAX_STREAM_ID_BYTES)
    " leading and trailing ",
]


@pytest.fixture
def url(postgres_url: str, pg_schema: str) -> str:
    return f"{postgres_url}?schema={pg_schema}"


@pytest.fixture
def store(url: str) -> Iterator[facta.EventStore]:
    with facta.connect(url, pool_size=2) as opened:
        yield opened


def readable(store: facta.EventStore) -> facta.EventStore:
    """``store``, once its global log shows every committed event (see wait_until_readable)."""
    recorder = store.recorder
    assert isinstance(recorder, PostgresRecorder)
    assert recorder.wait_until_readable(PATIENCE), recorder.reader_lag()
    return store


@event("test.postgres.Blob")
@dataclass(frozen=True)
class Blob:
    text: str


def event_class(name: str, registry: EventRegistry) -> type[Any]:
    """A fresh event class registered under ``name``."""

    @event(name, registry=registry)
    @dataclass(frozen=True)
    class Named:
        n: int

    return Named


@pytest.mark.parametrize("stream_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_hostile_stream_ids_are_stored_and_read_back_as_they_are(
    store: facta.EventStore, stream_id: str
) -> None:
    store.append(stream_id, [Happened(1, note=stream_id)], facta.ANY)
    assert [(e.stream_id, e.data.note) for e in store.read_stream(stream_id)] == [
        (stream_id, stream_id)
    ]
    assert list(store.streams()) == [(stream_id, 1)]


def test_hostile_type_names_are_stored_and_decoded(url: str) -> None:
    registry = EventRegistry()
    names = ["'); DROP TABLE facta_events; --", 'type "quoted"', "Tÿpe 🚀", "T" * 5000]
    classes = [event_class(name, registry) for name in names]
    with facta.connect(url, codec=Codec(registry)) as store:
        store.append("s", [cls(n) for n, cls in enumerate(classes)], facta.ANY)
        assert [e.type for e in store.read_stream("s")] == names
        assert [e.type for e in readable(store).read_all(types=[names[0]])] == names[:1]


def test_a_stream_id_over_the_limit_is_refused_with_nothing_written(
    store: facta.EventStore,
) -> None:
    incompressible = os.urandom(8_000).hex()
    with pytest.raises(InvalidStreamId, match="limit is 1,000 bytes"):
        store.append(incompressible, [Happened(1)], facta.ANY)
    assert list(readable(store).read_all()) == []


def test_a_nul_in_a_stream_id_is_refused_before_any_database_call() -> None:
    with facta.connect(UNREACHABLE_URL) as store, pytest.raises(InvalidStreamId, match="NUL"):
        store.append("a\x00b", [Happened(1)], facta.ANY)


def test_nul_characters_inside_event_data_and_metadata_round_trip(
    store: facta.EventStore,
) -> None:
    metadata = Metadata(correlation_id="c\x00", user={"k\x00": "v\x00"})
    store.append("s", [NewEvent(Happened(1, note="a\x00b"), metadata=metadata)], facta.ANY)
    (recorded,) = store.read_stream("s")
    assert (recorded.data.note, recorded.metadata) == ("a\x00b", metadata)


def test_a_lone_surrogate_in_event_data_is_refused_with_nothing_written(
    store: facta.EventStore,
) -> None:
    with pytest.raises(InvalidEvent):
        store.append("s", [Happened(1), Happened(2, note="\ud800")], facta.ANY)
    assert store.stream_version("s") == 0


def test_a_10_mib_event_round_trips(store: facta.EventStore) -> None:
    text = os.urandom(5 * MiB).hex()
    store.append("big", [Blob(text)], facta.ANY)
    (recorded,) = store.read_stream("big")
    assert recorded.data == Blob(text)


def test_a_compressed_10_mib_event_round_trips_and_records_its_encoding(
    url: str, postgres_url: str, pg_schema: str
) -> None:
    text = "facta " * (10 * MiB // 6)
    with facta.connect(url, compress_above=1024) as store:
        store.append("big", [Blob(text)], facta.ANY)
        (recorded,) = store.read_stream("big")
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute(f'SELECT encoding FROM "{pg_schema}".facta_events').fetchall()
    assert stored == [(ZLIB,)]
    assert recorded.data == Blob(text)


def test_a_100_mib_event_is_refused_before_any_database_call() -> None:
    with (
        facta.connect(UNREACHABLE_URL) as store,
        pytest.raises(EventTooLarge, match="104,857,6"),
    ):
        store.append("huge", [Blob("x" * (100 * MiB))], facta.ANY)


def test_a_100_mib_event_leaves_the_stream_untouched(store: facta.EventStore) -> None:
    store.append("s", [Happened(1)], facta.ANY)
    with pytest.raises(EventTooLarge):
        store.append("s", [Happened(2), Blob("x" * (100 * MiB))], facta.ANY)
    assert store.stream_version("s") == 1
