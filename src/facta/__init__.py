"""facta: event sourcing for Python.

Aggregates record events; an event store keeps them in append-only streams and one global
log; repositories load aggregates by replaying their streams and save what they recorded.

The main names, all importable from ``facta``:

- Stores: ``connect(url)`` and ``connect_async(url)`` (``memory://``, ``sqlite:///file.db``,
  ``postgresql://...``) open an ``EventStore`` or an ``AsyncEventStore``.
- Events: ``@event("TypeName", version=1)`` on a frozen dataclass, a ``msgspec.Struct`` or a
  pydantic model; ``NewEvent`` (an event with its id and ``Metadata``); ``RecordedEvent``, and
  its ``Checkpoint`` in the global log.
- Aggregates: ``Aggregate``; ``Repository`` and ``AsyncRepository`` (load, save, update);
  ``RetryPolicy``.
- Appending: ``ANY``, ``NO_STREAM``, ``STREAM_EXISTS`` (``ExpectedVersion``), ``StreamAppend``,
  ``AppendResult``.
- Old data: ``@upcaster``, ``@snapshot_upcaster``, ``Upcasters``; ``check_store`` reads
  everything stored with the current code.
- Ids: ``new_id()``, ``id_from_key(kind, key)``.
- Errors: ``FactaError`` and the tree under it (``ConcurrencyError``, ``AggregateNotFound``...).

Beside them: ``facta.projections`` (read models: ``Projection``, ``@handles``,
``ProjectionRunner``, ``add_inline``), ``facta.lifecycle`` (the markers and rules of
``store.delete_stream``, ``reopen_stream``, ``truncate_stream``, ``set_retention`` and
``prune``), ``facta.publishing`` (``Relay`` and one module per broker),
``facta.backends.partitioned`` (one store over several PostgreSQL servers) and
``facta.testing`` (the backend contract suite and given/when/then scenarios).

The documentation (getting started, concepts, a guide per feature, the command line and API
reference) is a site built from ``docs/`` in the repository: ``mkdocs serve`` shows it,
``docs/index.md`` is its first page.
"""

from facta import lifecycle
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
    CrossPartitionAppend,
    DecodeError,
    DuplicateEventId,
    EventsTruncated,
    EventTooLarge,
    FactaError,
    InvalidEvent,
    InvalidStreamId,
    NotAFactaStore,
    RetriesExhausted,
    SchemaVersionError,
    SnapshotError,
    StoreError,
    StreamDeleted,
    TransactionConflict,
    UnknownEventType,
    UnusableConnection,
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
    "CrossPartitionAppend",
    "DecodeError",
    "DuplicateEventId",
    "EventRegistry",
    "EventStore",
    "EventTooLarge",
    "EventsTruncated",
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
    "StreamDeleted",
    "Subject",
    "TransactionConflict",
    "UnknownEventType",
    "UnusableConnection",
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
    "lifecycle",
    "new_id",
    "snapshot_upcaster",
    "upcaster",
]
