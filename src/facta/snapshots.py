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

A state class may mark personal fields as events do (:mod:`facta.personal`): they are sealed
with their subjects' data keys, and read back as ``facta.Forgotten`` once a subject is
forgotten, so ``restore_state`` must take that value where it takes personal data.
"""

from __future__ import annotations

import zlib
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from facta.aggregate import Aggregate
from facta.codec import PLAIN, SEALED, ZLIB
from facta.errors import DecodeError, FactaError, SnapshotError, UpcastError
from facta.event_classes import convert, encode_hook, is_event_class, json_decoder
from facta.personal.data_keys import DataKeys
from facta.personal.fields import personal_fields
from facta.personal.markers import Forgotten
from facta.personal.sealing import build, open_fields, seal_fields
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
        try:
            self._personal = personal_fields(self.state_type)
        except FactaError as e:
            raise TypeError(f"{aggregate_type.__qualname__}.snapshot_type: {e}") from e

    def state_of(self, aggregate: A) -> Any:
        """The aggregate's ``snapshot_state()``, checked to be of its ``snapshot_type``."""
        state = aggregate.snapshot_state()
        if not isinstance(state, self.state_type):
            raise SnapshotError(
                f"snapshot of stream {aggregate.id!r} at version {aggregate.version}: "
                f"{self.aggregate_type.__qualname__}.snapshot_state() returned "
                f"{type(state).__qualname__}, not its snapshot_type {self.state_type.__qualname__}"
            )
        return state

    def subjects(self, aggregate: A, state: Any) -> list[str]:
        """The subjects whose data keys sealing ``state`` needs ([] without personal fields)."""
        if self._personal is None:
            return []
        where = f"snapshot of stream {aggregate.id!r} at version {aggregate.version}"
        try:
            return self._personal.subjects(state, aggregate.id, where)
        except FactaError as e:
            raise SnapshotError(str(e)) from e

    def encode(
        self, aggregate: A, keys: DataKeys | None = None, *, state: Any = None
    ) -> SnapshotRecord:
        """A snapshot of the aggregate as it is in memory, at its ``version``; ``state`` is
        its :meth:`state_of` if taken already, ``keys`` its :meth:`subjects`' data keys."""
        cls = self.aggregate_type
        where = f"snapshot of stream {aggregate.id!r} at version {aggregate.version}"
        if state is None:
            state = self.state_of(aggregate)
        try:
            data = self._encoder.encode(state)
        except (TypeError, ValueError, msgspec.EncodeError) as e:
            raise SnapshotError(f"{where}: the state cannot be encoded: {e}") from e
        encoding = PLAIN
        if self._personal is not None:  # personal fields, sealed under their subjects' keys
            try:
                data = seal_fields(self._personal, state, data, aggregate.id, keys, where)
            except FactaError as e:
                raise SnapshotError(str(e)) from e
            encoding = SEALED
        if self.compress_above is not None and len(data) > self.compress_above:
            data, encoding = zlib.compress(data, 1), encoding | ZLIB
        return SnapshotRecord(
            aggregate.id,
            aggregate.version,
            cls.type_name,
            cls.snapshot_version,
            encoding,
            checksum(data),
            data,
        )

    def decode(self, record: SnapshotRecord, keys: DataKeys | None = None) -> A:
        """A new aggregate restored from the snapshot, at the snapshot's version.

        Raises ``SnapshotError`` (naming the stream and version) for a snapshot that must not
        be trusted: corrupt, of another aggregate type or snapshot schema version that no
        upcaster reads, or one that does not decode or restore. Sealed personal fields open
        with ``keys`` (``store.fetch_snapshot_keys``); a forgotten subject's hold ``Forgotten``.
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
        if record.encoding & ~(ZLIB | SEALED):
            raise SnapshotError(f"{named}unknown encoding {record.encoding}")
        if record.encoding & ZLIB:
            try:
                data = zlib.decompress(data)
            except zlib.error as e:
                raise SnapshotError(f"{named}the stored state is corrupt: {e}") from e
        if record.encoding & SEALED:
            state = self._sealed_state(record, data, where, named, keys)
        else:
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
        return self._upcast_state(record, None, data, where, named)

    def _sealed_state(
        self, record: SnapshotRecord, data: bytes, where: str, named: str, keys: DataKeys | None
    ) -> Any:
        """A state with sealed personal fields: opened (``Forgotten`` where a key is
        destroyed), upcast if older, converted as decoding would."""
        try:
            fields = self._dict_decoder.decode(data)
            open_fields(fields, DataKeys() if keys is None else keys, named)
        except msgspec.DecodeError as e:
            raise SnapshotError(f"{named}the state is not a JSON object: {e}") from e
        except DecodeError as e:
            raise SnapshotError(str(e)) from e
        return self._upcast_state(record, fields, data, where, named)

    def _upcast_state(
        self,
        record: SnapshotRecord,
        fields: dict[str, Any] | None,
        data: bytes,
        where: str,
        named: str,
    ) -> Any:
        """The state from ``fields`` (or ``data``, decoded), upcast when it is older."""
        cls = self.aggregate_type
        target = self.state_type.__qualname__
        version = record.schema_version
        try:
            if fields is None:
                fields = self._dict_decoder.decode(data)
            if record.aggregate_type == cls.type_name and version == cls.snapshot_version:
                return self._convert(fields, named)
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
            return self._convert(fields, named)
        except SnapshotError as e:
            raise SnapshotError(
                f"{named}upcasted to schema version {version}, which does not decode into "
                f"{target}: {e.__cause__}"
            ) from e

    def _convert(self, fields: dict[str, Any], named: str) -> Any:
        """The state from decoded (and opened) fields, some of which may be ``Forgotten``."""
        target = self.state_type.__qualname__
        try:
            if any(value is Forgotten for value in fields.values()):
                return build(self.state_type, fields, named)
            return convert(fields, self.state_type)
        except (msgspec.ValidationError, DecodeError) as e:
            raise SnapshotError(f"{named}the state does not decode into {target}: {e}") from e


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
