"""The exceptions facta raises: one root, ``FactaError``, and a small tree under it.

Every message says what happened, to which stream or event, and what to do about it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class FactaError(Exception):
    """The root of every error facta raises on purpose."""


class InvalidStreamId(FactaError, ValueError):
    """A stream id that is not a non-empty string without NUL characters."""


class InvalidEvent(FactaError, ValueError):
    """An event that cannot be written: not registered, not encodable, or malformed."""


class EventTooLarge(InvalidEvent):
    """An encoded event larger than the store's limit; nothing was written."""

    def __init__(self, stream_id: str, type_name: str, size: int, limit: int) -> None:
        self.stream_id, self.type_name, self.size, self.limit = stream_id, type_name, size, limit
        super().__init__(
            f"event {type_name!r} for stream {stream_id!r} is {size:,} bytes encoded, over the "
            f"store's limit of {limit:,} bytes; nothing was written (store large payloads "
            "elsewhere and keep a reference in the event, or raise max_event_size)"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (across processes) by its fields
        return type(self), (self.stream_id, self.type_name, self.size, self.limit)


class UnknownEventType(FactaError, LookupError):
    """A stored event whose type name no registered class claims."""


class DecodeError(FactaError, ValueError):
    """Stored bytes that do not decode into the registered event class."""


class UpcastError(FactaError):
    """An upcaster failed, a step of an upcaster chain is missing, or its output does not decode."""


class SnapshotError(FactaError):
    """A snapshot that cannot be taken, or cannot be trusted (loads skip it and replay events)."""


class ConcurrencyError(FactaError):
    """The stream's version is not the one the append expected; nothing was written.

    ``expected`` is what the append stated (an ``ExpectedVersion`` or an exact version),
    ``actual`` the stream's version when the append was refused.
    """

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id, self.expected, self.actual = stream_id, expected, actual
        shown = getattr(expected, "name", expected)  # ExpectedVersion.ANY -> "ANY"
        super().__init__(
            f"stream {stream_id!r}: expected version {shown}, but the stream is at version "
            f"{actual}; reload and retry the command"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.stream_id, self.expected, self.actual)


class TransactionConflict(ConcurrencyError):
    """An append in the caller's transaction (``connection=``) met a concurrent writer that
    only a new transaction can get past; nothing was written.

    The caller's transaction is still usable (facta rolled back to its savepoint), but the
    same append would fail in it again: roll the transaction back and run it again.
    ``reason`` says what happened.
    """

    def __init__(self, stream_id: str, expected: int, actual: int, reason: str) -> None:
        super().__init__(stream_id, expected, actual)
        self.reason = reason
        self.args = (
            f"stream {stream_id!r}: {reason}; nothing was written. Roll the transaction back "
            "and run it again (the append would fail again in this one)",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.stream_id, self.expected, self.actual, self.reason)


class RetriesExhausted(FactaError):
    """A command kept meeting concurrent writers and gave up after its last attempt."""

    def __init__(
        self, stream_id: str, attempts: int, last: ConcurrencyError, seconds: float | None = None
    ) -> None:
        self.stream_id, self.attempts, self.last = stream_id, attempts, last
        self.seconds = seconds
        spent = "" if seconds is None else f" in {seconds:.2f} s"
        super().__init__(
            f"stream {stream_id!r}: gave up after {attempts} attempts{spent}, each met a "
            f"concurrent write (last: {last}); allow more with the repository's RetryPolicy"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.stream_id, self.attempts, self.last, self.seconds)


class AggregateNotFound(FactaError, LookupError):
    """``load`` was asked for a stream that holds no events."""

    def __init__(self, aggregate_type: str, stream_id: str) -> None:
        self.aggregate_type, self.stream_id = aggregate_type, stream_id
        super().__init__(f"no {aggregate_type} with id {stream_id!r}: its stream holds no events")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.aggregate_type, self.stream_id)


class WrongAggregateType(FactaError, TypeError):
    """A repository of one aggregate type was asked to load or save a stream that another
    aggregate type created; nothing was read or written."""

    def __init__(self, stream_id: str, recorded: str, given: str) -> None:
        self.stream_id, self.recorded, self.given = stream_id, recorded, given
        super().__init__(
            f"stream {stream_id!r} belongs to aggregate type {recorded!r}, not {given!r}; "
            "nothing was read or written: a repository loads and saves only the streams its "
            f"aggregate type created (if {recorded!r} was "
            f"renamed to {given!r}, keep the stored name with type_name = {recorded!r} on the "
            "class)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.stream_id, self.recorded, self.given)


class StreamDeleted(FactaError):
    """The stream was deleted: loads and appends are refused (``store.reopen_stream`` undoes a
    soft deletion)."""

    def __init__(self, stream_id: str, deleted_at: datetime | None, hard: bool = False) -> None:
        self.stream_id, self.deleted_at, self.hard = stream_id, deleted_at, hard
        when = "" if deleted_at is None else f" at {deleted_at.isoformat(timespec='seconds')}"
        how = (
            "hard-deleted: its events are gone and its id is not reused"
            if hard
            else "deleted (its events are kept; store.reopen_stream() opens it again)"
        )
        super().__init__(f"stream {stream_id!r} was {how}{when}; nothing was read or written")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.stream_id, self.deleted_at, self.hard)


class EventsTruncated(FactaError):
    """A load needed events that a truncation removed: no usable snapshot covers them."""

    def __init__(self, stream_id: str, first_version: int) -> None:
        self.stream_id, self.first_version = stream_id, first_version
        super().__init__(
            f"stream {stream_id!r}: its events before version {first_version} were truncated and "
            f"no usable snapshot at version {first_version - 1} or later was found, so the "
            "aggregate cannot be rebuilt; restore a snapshot or load it with the snapshot "
            "upcaster that reads the stored one"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.stream_id, self.first_version)


class InvalidCheckpoint(FactaError, TypeError):
    """What was given as a place in the global log is not a ``facta.Checkpoint``."""


class StoreError(FactaError):
    """The store's database failed (connection lost, pool exhausted, disk full...)."""


class NotAFactaStore(StoreError):
    """A read-only or existing-only open found no facta store at the URL (nothing was created)."""


class ConfigurationError(FactaError, ValueError):
    """A URL or option that no backend accepts: an unknown scheme, an unknown option."""


class UnusableConnection(FactaError, ValueError):
    """A ``connection=`` that facta cannot append in: the wrong kind for the store, not in
    a transaction, in a failed one, or to another database or file; nothing was written."""


class CrossPartitionAppend(FactaError):
    """One append named streams of several partitions of a partitioned store; nothing was
    written (a transaction spans one partition's database only)."""

    def __init__(self, partitions: dict[str, list[str]]) -> None:
        self.partitions = partitions
        where = "; ".join(
            f"{name}: {', '.join(map(repr, ids))}" for name, ids in partitions.items()
        )
        super().__init__(
            f"one append cannot span partitions ({where}); nothing was written. Append to each "
            "partition separately, or place the streams together (by tenant, or in one slice)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.partitions,)


class SchemaVersionError(StoreError):
    """The database's schema is newer than this version of facta knows, or not migrated."""


class DuplicateEventId(InvalidEvent):
    """An appended event id is already stored elsewhere; nothing was written."""


class ProjectionLocked(FactaError):
    """Another runner holds the projection (one instance per projection at a time)."""

    def __init__(self, projection: str, where: str) -> None:
        self.projection = projection
        super().__init__(
            f"projection {projection!r} is already running or rebuilding ({where}); stop that "
            "runner first, or start this one with wait=True to take over when it ends"
        )


class ReplicaBehind(StoreError):
    """No replica replayed the commit a read asked to see (``fresh=``) within the store's
    ``replica_timeout``; nothing was read. ``lsn`` is the commit's WAL position, ``replayed``
    how far ``replica`` (the one furthest ahead) had got."""

    def __init__(self, replica: str, lsn: int, replayed: int | None, seconds: float) -> None:
        self.replica, self.lsn, self.replayed, self.seconds = replica, lsn, replayed, seconds
        got = (
            "replays nothing (is it a standby?)"
            if replayed is None
            else (f"had replayed {format_lsn(replayed)}")
        )
        super().__init__(
            f"replica {replica} had not replayed the commit at {format_lsn(lsn)} after "
            f"{seconds:g} s: it {got}. Read with fresh=True (the primary), raise "
            "replica_timeout, or open the store with replica_fallback=True"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (across processes) by its fields
        return type(self), (self.replica, self.lsn, self.replayed, self.seconds)


def format_lsn(lsn: int) -> str:
    """A WAL position as PostgreSQL writes it (``0/16B3748``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


class LeaseLost(FactaError):
    """A sliced projection's worker lost a range it held (its lease expired and another worker
    took it over, or a rebuild reset it): the batch in hand was rolled back, nothing of it kept."""
