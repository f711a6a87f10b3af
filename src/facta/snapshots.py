"""Snapshots: an aggregate's state at a stream version, so that loads replay fewer events.

An aggregate opts in with four explicit declarations, and nothing is guessed from its
attributes: ``snapshot_every`` (take a snapshot after every N events; or, by the cost of its
loads, ``snapshot_after_replaying`` N events or ``snapshot_after_seconds``), ``snapshot_type`` (a
dataclass, ``msgspec.Struct`` or pydantic model holding the state), ``snapshot_state()`` (the
state as that type) and ``restore_state(state)`` (set up a just-constructed aggregate from it).
Change the state's shape and you bump ``snapshot_version``: older snapshots are then skipped
(the load replays the stream and writes a fresh one) unless a :func:`~facta.snapshot_upcaster`
migrates them.

>>> from dataclasses import dataclass
>>> import facta
>>> @facta.event("doc.Added")
... @dataclass(frozen=True)
... class Added:
...     amount: int
>>> @dataclass
... class TallyState:
...     total: int
>>> class Tally(facta.Aggregate):
...     snapshot_every = 100
...     snapshot_type = TallyState
...     def __init__(self, id: str | None = None) -> None:
...         super().__init__(id)
...         self.total = 0
...     def add(self, amount: int) -> None:
...         self.record(Added(amount))
...     def apply(self, event: object) -> None:
...         if isinstance(event, Added):
...             self.total += event.amount
...     def snapshot_state(self) -> TallyState:
...         return TallyState(self.total)
...     def restore_state(self, state: TallyState) -> None:
...         self.total = state.total
>>> with facta.connect("memory://") as store:
...     tallies = facta.Repository(store, Tally)
...     tally = Tally("tally-1")
...     for _ in range(250):
...         tally.add(2)
...     _ = tallies.save(tally)
...     print([snapshot.version for snapshot in store.read_snapshots("tally-1")])
...     print(tallies.load("tally-1").total)
[250]
500

A stored snapshot is never trusted blindly: its checksum, aggregate type, snapshot schema
version and decoding are all checked, and any failure is a :class:`SnapshotError`.
"""

from __future__ import annotations

import zlib
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from facta.aggregate import Aggregate
from facta.codec import PLAIN, ZLIB
from facta.errors import SnapshotError, UpcastError
from facta.event_classes import convert, encode_hook, is_event_class, json_decoder
from facta.upcasting import Upcasters, default_snapshot_upcasters

__all__ = ["SNAPSHOT_CANDIDATES", "SnapshotCodec", "SnapshotRecord", "checksum", "snapshotted"]

# How many of a stream's newest snapshots a load (and `facta check`) considers.
SNAPSHOT_CANDIDATES = 3
DEFAULT_COMPRESS_ABOVE = 4096

A = TypeVar("A", bound=Aggregate)


class SnapshotRecord(NamedTuple):
    """A stored snapshot. ``checksum`` is the CRC-32 of ``state`` as stored."""

    stream_id: str
    version: int
    aggregate_type: str
    schema_version: int
    encoding: int
    checksum: int
    state: bytes


def snapshotted(cls: type[Aggregate]) -> bool:
    """Whether the aggregate type asks for snapshots: every N events, or by load cost."""
    return (
        cls.snapshot_every is not None
        or cls.snapshot_after_replaying is not None
        or cls.snapshot_after_seconds is not None
    )


def checksum(state: bytes) -> int:
    """The checksum stored with a snapshot's state (CRC-32: catches corruption, not attacks)."""
    return zlib.crc32(state)


class SnapshotCodec(Generic[A]):
    """Turns the state of one aggregate type into snapshot records and back; pure, no I/O.

    ``upcasters`` migrate snapshots of older ``snapshot_version``\\ s (default: those registered
    with ``@facta.snapshot_upcaster``); states larger than ``compress_above`` bytes are
    compressed (None: never).
    """

    def __init__(
        self,
        aggregate_type: type[A],
        upcasters: Upcasters | None = None,
        *,
        compress_above: int | None = DEFAULT_COMPRESS_ABOVE,
    ) -> None:
        self.state_type = _state_type(aggregate_type)
        self.aggregate_type = aggregate_type
        self.upcasters = default_snapshot_upcasters if upcasters is None else upcasters
        self.compress_above = compress_above
        self._encoder = msgspec.json.Encoder(enc_hook=encode_hook)
        self._decoder = json_decoder(self.state_type)
        self._dict_decoder = msgspec.json.Decoder(dict[str, Any])

    def encode(self, aggregate: A) -> SnapshotRecord:
        """A snapshot of the aggregate as it is in memory, at its ``version``."""
        cls = self.aggregate_type
        where = f"snapshot of stream {aggregate.id!r} at version {aggregate.version}"
        state = aggregate.snapshot_state()
        if not isinstance(state, self.state_type):
            raise SnapshotError(
                f"{where}: {cls.__qualname__}.snapshot_state() returned "
                f"{type(state).__qualname__}, not its snapshot_type {self.state_type.__qualname__}"
            )
        try:
            data = self._encoder.encode(state)
        except (TypeError, ValueError, msgspec.EncodeError) as e:
            raise SnapshotError(f"{where}: the state cannot be encoded: {e}") from e
        encoding = PLAIN
        if self.compress_above is not None and len(data) > self.compress_above:
            data, encoding = zlib.compress(data, 1), ZLIB
        return SnapshotRecord(
            aggregate.id,
            aggregate.version,
            cls.type_name,
            cls.snapshot_version,
            encoding,
            checksum(data),
            data,
        )

    def decode(self, record: SnapshotRecord) -> A:
        """A new aggregate restored from the snapshot, at the snapshot's version.

        Raises ``SnapshotError`` (naming the stream and version) for a snapshot that must not
        be trusted: corrupt, of another aggregate type or snapshot schema version that no
        upcaster reads, or one that does not decode or restore.
        """
        cls = self.aggregate_type
        where = f"snapshot of stream {record.stream_id!r} at version {record.version}: "
        named = f"{where}aggregate type {record.aggregate_type!r} schema version "
        named += f"{record.schema_version}: "
        if record.checksum != checksum(record.state):
            raise SnapshotError(
                f"{named}checksum mismatch (stored {record.checksum}, computed "
                f"{checksum(record.state)}): the stored state is corrupt"
            )
        if record.aggregate_type != cls.type_name and not self.upcasters.reads(
            record.aggregate_type
        ):
            raise SnapshotError(
                f"{named}written for another aggregate type than {cls.type_name!r} (if the type "
                f"was renamed, register a snapshot upcaster with to_type={cls.type_name!r})"
            )
        data = record.state
        if record.encoding == ZLIB:
            try:
                data = zlib.decompress(data)
            except zlib.error as e:
                raise SnapshotError(f"{named}the stored state is corrupt: {e}") from e
        elif record.encoding != PLAIN:
            raise SnapshotError(f"{named}unknown encoding {record.encoding}")
        state = self._state(record, data, where, named)
        aggregate = cls(record.stream_id)
        try:
            aggregate.restore_state(state)
        except Exception as e:
            raise SnapshotError(
                f"{named}{cls.__qualname__}.restore_state() failed: {type(e).__name__}: {e}"
            ) from e
        aggregate.version = record.version
        return aggregate

    def _state(self, record: SnapshotRecord, data: bytes, where: str, named: str) -> Any:
        cls = self.aggregate_type
        target = self.state_type.__qualname__
        if record.aggregate_type == cls.type_name and record.schema_version == cls.snapshot_version:
            try:
                return self._decoder.decode(data)
            except msgspec.DecodeError as e:
                raise SnapshotError(f"{named}the state does not decode into {target}: {e}") from e
        try:
            fields = self._dict_decoder.decode(data)
            _, version, fields = self.upcasters.upcast(
                record.aggregate_type,
                record.schema_version,
                fields,
                lambda name: cls.snapshot_version if name == cls.type_name else None,
                f"{where}aggregate ",
            )
        except msgspec.DecodeError as e:
            raise SnapshotError(f"{named}the state is not a JSON object: {e}") from e
        except UpcastError as e:
            raise SnapshotError(str(e)) from e
        try:
            return convert(fields, self.state_type)
        except msgspec.ValidationError as e:
            raise SnapshotError(
                f"{named}upcasted to schema version {version}, which does not decode into "
                f"{target}: {e}"
            ) from e


def _state_type(cls: type[Aggregate]) -> type:
    """The aggregate's ``snapshot_type``, once its snapshot declarations are checked."""
    name = cls.__qualname__
    every, version, state_type = cls.snapshot_every, cls.snapshot_version, cls.snapshot_type
    replaying, seconds = cls.snapshot_after_replaying, cls.snapshot_after_seconds
    for attribute, value in (("snapshot_every", every), ("snapshot_after_replaying", replaying)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise TypeError(f"{name}.{attribute} must be None or an int >= 1, got {value!r}")
    if seconds is not None and (
        not isinstance(seconds, int | float) or isinstance(seconds, bool) or not seconds > 0
    ):
        raise TypeError(
            f"{name}.snapshot_after_seconds must be None or a number of seconds > 0, got "
            f"{seconds!r}"
        )
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TypeError(f"{name}.snapshot_version must be an int >= 1, got {version!r}")
    if not (isinstance(state_type, type) and is_event_class(state_type)):
        raise TypeError(
            f"{name} is snapshotted, so {name}.snapshot_type must be the dataclass or "
            f"msgspec.Struct (or pydantic model) that its snapshot_state() returns, got "
            f"{state_type!r}"
        )
    for method in ("snapshot_state", "restore_state"):
        if getattr(cls, method) is getattr(Aggregate, method):
            raise TypeError(f"{name} is snapshotted, so it must implement {method}()")
    return state_type
