"""facta: event sourcing for Python.

Aggregates record events; an event store keeps them in append-only streams and one global
log; repositories load aggregates by replaying their streams and save what they recorded.
"""

from facta.aggregate import Aggregate
from facta.appending import AppendResult, ExpectedVersion, StreamAppend
from facta.check_report import CheckFailure, CheckReport
from facta.checking import check_store
from facta.checking_async import check_store_async
from facta.codec import Codec
from facta.connect import connect, connect_async
from facta.errors import (
    AggregateNotFound,
    ConcurrencyError,
    ConfigurationError,
    DecodeError,
    DuplicateEventId,
    EventTooLarge,
    FactaError,
    InvalidEvent,
    InvalidStreamId,
    NotAFactaStore,
    RetriesExhausted,
    SchemaVersionError,
    SnapshotError,
    StoreError,
    UnknownEventType,
    UpcastError,
    WrongAggregateType,
)
from facta.events import (
    Checkpoint,
    EventRegistry,
    Metadata,
    NewEvent,
    RecordedEvent,
    default_registry,
    event,
)
from facta.ids import id_from_key, new_id
from facta.personal.markers import Forgotten, Personal, Subject
from facta.repository import Repository
from facta.repository_async import AsyncRepository
from facta.retrying import RetryPolicy
from facta.store import EventStore
from facta.store_async import AsyncEventStore
from facta.upcasting import Upcasters, snapshot_upcaster, upcaster

ANY = ExpectedVersion.ANY
NO_STREAM = ExpectedVersion.NO_STREAM
STREAM_EXISTS = ExpectedVersion.STREAM_EXISTS

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "Aggregate",
    "AggregateNotFound",
    "AppendResult",
    "AsyncEventStore",
    "AsyncRepository",
    "CheckFailure",
    "CheckReport",
    "Checkpoint",
    "Codec",
    "ConcurrencyError",
    "ConfigurationError",
    "DecodeError",
    "DuplicateEventId",
    "EventRegistry",
    "EventStore",
    "EventTooLarge",
    "ExpectedVersion",
    "FactaError",
    "Forgotten",
    "InvalidEvent",
    "InvalidStreamId",
    "Metadata",
    "NewEvent",
    "NotAFactaStore",
    "Personal",
    "RecordedEvent",
    "Repository",
    "RetriesExhausted",
    "RetryPolicy",
    "SchemaVersionError",
    "SnapshotError",
    "StoreError",
    "StreamAppend",
    "Subject",
    "UnknownEventType",
    "UpcastError",
    "Upcasters",
    "WrongAggregateType",
    "check_store",
    "check_store_async",
    "connect",
    "connect_async",
    "default_registry",
    "event",
    "id_from_key",
    "new_id",
    "snapshot_upcaster",
    "upcaster",
]
