"""What ``facta check`` finds: each failure with its place, and a summary; pure, no I/O.

The I/O loop is :func:`facta.checking_async.check_store_async` (and its sync twin); this
module holds what both share: the report, and how one snapshot is checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, NamedTuple

from facta.aggregate import Aggregate
from facta.errors import FactaError
from facta.personal.data_keys import DataKeys
from facta.records import StoredEvent
from facta.snapshots import SnapshotCodec, SnapshotRecord, checksum, snapshotted
from facta.upcasting import Upcasters, default_snapshot_upcasters

__all__ = ["CheckFailure", "CheckReport", "SnapshotChecker", "database_failure", "event_failure"]

# How many failures a report keeps (every one of them goes to the on_failure callback).
KEPT_FAILURES = 100


class CheckFailure(NamedTuple):
    """A stored event or snapshot the current code cannot read, or a problem the database
    reports in its own files. ``message`` names its place: the stream, version (and position,
    for an event), type and schema version; for a ``"database"`` failure, the store (its
    stream id is ``""`` and its version 0)."""

    kind: str  # "event", "snapshot" or "database"
    stream_id: str
    version: int
    position: int | None  # None for a snapshot
    message: str

    def __str__(self) -> str:
        return self.message


@dataclasses.dataclass
class CheckReport:
    """Counts of what was read and what failed, and the first failures found."""

    streams: int = 0
    events: int = 0
    snapshots: int = 0
    unchecked_snapshots: int = 0  # of aggregate types not given: only their checksum is checked
    event_failures: int = 0
    snapshot_failures: int = 0
    database_failures: int = 0  # problems the database reports (a damaged file)
    failures: list[CheckFailure] = dataclasses.field(default_factory=list)  # the first ones

    @property
    def ok(self) -> bool:
        """Whether the database reports no problem and everything read decodes with the
        current code."""
        return self.event_failures == 0 and self.snapshot_failures == 0 == self.database_failures

    def add(self, failure: CheckFailure) -> None:
        """Count a failure (and keep it, while fewer than ``KEPT_FAILURES`` are kept)."""
        if failure.kind == "event":
            self.event_failures += 1
        elif failure.kind == "database":
            self.database_failures += 1
        else:
            self.snapshot_failures += 1
        if len(self.failures) < KEPT_FAILURES:
            self.failures.append(failure)

    def summary(self) -> str:
        """One paragraph: what was checked and how many failures were found."""
        failed = self.event_failures + self.snapshot_failures + self.database_failures
        text = (
            f"checked {_count(self.events, 'event')} in {_count(self.streams, 'stream')} and "
            f"{_count(self.snapshots, 'snapshot')}: "
        )
        if failed == 0:
            text += "no failures"
        else:
            database = (
                f", {_count(self.database_failures, 'database problem')}"
                if self.database_failures
                else ""
            )
            text += (
                f"{_count(failed, 'failure')} ({_count(self.event_failures, 'event')}, "
                f"{_count(self.snapshot_failures, 'snapshot')}{database})"
            )
        if self.unchecked_snapshots:
            text += (
                f"; {_count(self.unchecked_snapshots, 'snapshot')} of aggregate types not "
                "imported had only their checksum checked"
            )
        return text


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


class SnapshotChecker:
    """Decodes stored snapshots with the aggregate classes of the current code.

    ``aggregates`` are the snapshotted aggregate classes to check with (None: every imported
    ``Aggregate`` subclass that takes snapshots: ``snapshot_every`` or a load-cost trigger).
    """

    def __init__(
        self,
        aggregates: Iterable[type[Aggregate]] | None = None,
        upcasters: Upcasters | None = None,
    ) -> None:
        self.upcasters = default_snapshot_upcasters if upcasters is None else upcasters
        found = _snapshotted() if aggregates is None else list(aggregates)
        self._codecs: dict[str, SnapshotCodec[Any]] = {}
        # Type names claimed by two classes: their snapshots are reported, not guessed at.
        self._ambiguous: dict[str, str] = {}
        for cls in found:
            other = self._codecs.get(cls.type_name)
            if other is not None and other.aggregate_type is not cls:
                self._ambiguous[cls.type_name] = (
                    f"aggregate classes {other.aggregate_type.__qualname__} and {cls.__qualname__}"
                    f" are both named {cls.type_name!r}; give the ones to check explicitly"
                )
            self._codecs[cls.type_name] = SnapshotCodec(cls, self.upcasters)

    def check(
        self, record: SnapshotRecord, keys: DataKeys | None = None
    ) -> tuple[bool, CheckFailure | None]:
        """``(checked, failure)``: ``checked`` is False when no given aggregate class reads the
        snapshot, so only its checksum was checked. ``keys`` open sealed personal fields."""
        name = self.upcasters.destination(record.aggregate_type, record.schema_version)
        if name in self._ambiguous:
            where = f"snapshot of stream {record.stream_id!r} at version {record.version}"
            message = f"{where}: cannot be checked: {self._ambiguous[name]}"
            return False, CheckFailure("snapshot", record.stream_id, record.version, None, message)
        codec = self._codecs.get(name)
        try:
            if codec is not None:
                codec.decode(record, keys)
            elif record.checksum != checksum(record.state):
                message = (
                    f"snapshot of stream {record.stream_id!r} at version {record.version}: "
                    f"aggregate type {record.aggregate_type!r} schema version "
                    f"{record.schema_version}: checksum mismatch: the stored state is corrupt"
                )
                return False, CheckFailure(
                    "snapshot", record.stream_id, record.version, None, message
                )
        except FactaError as e:
            return True, CheckFailure("snapshot", record.stream_id, record.version, None, str(e))
        return codec is not None, None


def _snapshotted() -> list[type[Aggregate]]:
    """Every imported Aggregate subclass that takes snapshots."""
    found, todo = [], list(Aggregate.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if snapshotted(cls):
            found.append(cls)
    return found


def database_failure(location: str, problem: str) -> CheckFailure:
    """The failure for a problem the database reports in the store at ``location``."""
    return CheckFailure("database", "", 0, None, f"{location}: the database is damaged: {problem}")


def event_failure(row: StoredEvent, error: Exception) -> CheckFailure:
    """The failure for a stored event that does not decode."""
    stream_id, version, position = row.stream_id, row.version, row.position
    place = f"stream {stream_id!r} version {version} (position {position}): "
    message = str(error)
    if not message.startswith(place):  # the store's decoding errors name the place already
        message = f"{place}type {row.type!r} schema version {row.schema_version}: {type(error).__name__}: {error}"
    return CheckFailure("event", stream_id, version, position, message)
