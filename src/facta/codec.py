"""The serialization format: msgspec JSON, typed decoding, optional zlib, upcasting on read.

A stored event is ``(type, schema_version, encoding, data, metadata)``: ``data`` is the
event's fields as a JSON object; ``encoding`` says which stages were applied to it
(``PLAIN`` or ``ZLIB``). Decoding goes straight into the registered class, validating; older
schema versions pass through the upcaster chain first. A pydantic model is stored as the same
JSON as the equivalent dataclass and decoded by pydantic (see :mod:`facta.event_classes`).

An event is stored only if it reads back equal to what was appended (see
:mod:`facta.readback`): NaN in an ``Any`` field, bytes in a ``str`` field or a tuple in a ``list``
field are refused with ``InvalidEvent`` before anything is written.

>>> from dataclasses import dataclass
>>> from facta.events import EventRegistry, event
>>> registry = EventRegistry()
>>> @event("Renamed", registry=registry)
... @dataclass(frozen=True)
... class Renamed:
...     name: str
>>> codec = Codec(registry)
>>> type_name, version, encoding, data = codec.encode("s-1", Renamed("ada"))
>>> data
b'{"name":"ada"}'
>>> codec.decode(type_name, version, encoding, data)
Renamed(name='ada')
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from facta.errors import DecodeError, EventTooLarge, InvalidEvent, UnknownEventType, UpcastError
from facta.event_classes import convert, encode_hook, json_decoder
from facta.events import EMPTY_METADATA, EventRegistry, Metadata, default_registry
from facta.personal.data_keys import DataKeys
from facta.personal.fields import PersonalFields, personal_fields
from facta.personal.markers import Forgotten
from facta.personal.sealing import SEALED, build, open_fields, seal_fields
from facta.readback import Check, difference, fast_check, metadata_check
from facta.upcasting import Upcasters, default_upcasters

__all__ = ["DEFAULT_MAX_EVENT_SIZE", "PLAIN", "SEALED", "ZLIB", "Codec"]

PLAIN = 0
ZLIB = 1
DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024  # as KurrentDB

_EMPTY_METADATA_BYTES = b"{}"


def _whose(stream_id: str, type_name: str | None) -> str:
    if type_name is None:
        return f"metadata for stream {stream_id!r}"
    return f"metadata of event {type_name!r} for stream {stream_id!r}"


class _EventClass(NamedTuple):
    """What the codec needs about a registered type name (cached per registry generation)."""

    cls: type
    version: int
    decoder: Any  # the JSON decoder of cls; None for a type renamed by upcasters
    check: Check | None  # the fast read-back check; None: always decode and compare
    constrained: bool  # values that pass the check are decoded too, for the constraints
    personal: PersonalFields | None = None  # the fields sealed under their subjects' keys


class Codec:
    """Encodes events for storage and decodes stored events; pure, no I/O.

    ``max_event_size`` bounds an event's encoded size; ``compress_above`` (bytes, None for
    never) turns on zlib for larger payloads.
    """

    def __init__(
        self,
        registry: EventRegistry | None = None,
        upcasters: Upcasters | None = None,
        *,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        compress_above: int | None = None,
    ) -> None:
        self.registry = registry or default_registry
        self.upcasters = default_upcasters if upcasters is None else upcasters
        self.max_event_size = max_event_size
        self.compress_above = compress_above
        self._encoder = msgspec.json.Encoder(enc_hook=encode_hook)
        self._metadata_decoder = msgspec.json.Decoder(Metadata)
        self._metadata_check, _ = metadata_check()
        self._dict_decoder = msgspec.json.Decoder(dict[str, Any])
        self._classes: dict[str, _EventClass] = {}
        self._generation = self.registry.generation

    def encode(
        self, stream_id: str, event: object, keys: DataKeys | None = None
    ) -> tuple[str, int, int, bytes]:
        """``(type name, schema version, encoding, data)`` for one event, checked for size.

        An event with personal fields (:mod:`facta.personal`) is sealed with its subjects'
        data keys, which ``keys`` holds (the store fetches them); ``encoding`` then has the
        ``SEALED`` stage.

        ``InvalidEvent`` if the event would not read back equal to itself: a value that
        encodes but never decodes (a str in an int field) would fail every later read, and
        one that decodes into something else (NaN as None) would be silently changed.
        """
        try:
            name, version = self.registry.type_of(event)
        except InvalidEvent as e:
            raise InvalidEvent(f"stream {stream_id!r}: {e}; nothing was written") from None
        try:
            data = self._encoder.encode(event)
        except (TypeError, ValueError, RecursionError, msgspec.EncodeError) as e:
            raise InvalidEvent(
                f"event {name!r} for stream {stream_id!r} cannot be encoded: {e}; "
                "nothing was written"
            ) from e
        known = self._event_class(name, "")
        try:
            passed = known.check is not None and known.check(event)
        except (AttributeError, RecursionError):  # a field never set, deep nesting: compare
            passed = False
        if not passed or known.constrained:  # constraints (Meta(ge=0)...): the decoder's job
            what = f"event {name!r} for stream {stream_id!r}"
            self._read_back(what, known, None if passed else event, data)
        stages = PLAIN
        if known.personal is not None:  # personal fields, sealed under their subjects' keys
            what = f"event {name!r} for stream {stream_id!r}"
            data = seal_fields(known.personal, event, data, stream_id, keys, what)
            stages = SEALED
        if len(data) > self.max_event_size:
            raise EventTooLarge(stream_id, name, len(data), self.max_event_size)
        if self.compress_above is not None and len(data) > self.compress_above:
            return name, version, stages | ZLIB, zlib.compress(data, 1)
        return name, version, stages, data

    def encode_metadata(
        self, stream_id: str, metadata: Metadata, type_name: str | None = None
    ) -> bytes:
        """The stored form of an event's metadata; ``type_name`` names the event in errors.

        ``InvalidEvent`` if it would not read back equal: ``user`` holds JSON values only.
        """
        if metadata is EMPTY_METADATA:
            return _EMPTY_METADATA_BYTES
        if not isinstance(metadata, Metadata):
            raise InvalidEvent(
                f"{_whose(stream_id, type_name)} is a {type(metadata).__qualname__}, not a "
                "facta.Metadata; nothing was written"
            )
        try:
            data = self._encoder.encode(metadata)
        except (TypeError, ValueError, RecursionError, msgspec.EncodeError) as e:
            raise InvalidEvent(
                f"{_whose(stream_id, type_name)} cannot be encoded: {e}; nothing was written"
            ) from e
        try:
            passed = self._metadata_check is not None and self._metadata_check(metadata)
        except RecursionError:
            passed = False
        if not passed:
            known = _EventClass(Metadata, 0, self._metadata_decoder, None, False)
            self._read_back(_whose(stream_id, type_name), known, metadata, data)
        return data

    def _read_back(self, what: str, known: _EventClass, written: object, data: bytes) -> None:
        """``InvalidEvent`` unless ``data`` decodes into a value equal to ``written`` (just
        decodes, if ``written`` is None: the fast check vouched for equality already)."""
        try:
            read = known.decoder.decode(data)
            found = None if written is None else difference(written, read)
        except msgspec.DecodeError as e:
            raise InvalidEvent(
                f"{what} would not decode back into {known.cls.__qualname__}: {e} (check the "
                "values' types); nothing was written"
            ) from e
        except RecursionError:
            raise InvalidEvent(
                f"{what} is nested too deeply to check that it reads back as written; "
                "nothing was written"
            ) from None
        if found is not None:
            explained = found.explained(declared=known.cls is not Metadata)
            raise InvalidEvent(
                f"{what} would not read back as written: {explained}; nothing was written"
            )

    def decode_metadata(self, data: bytes) -> Metadata:
        """The metadata of a stored event."""
        if data == _EMPTY_METADATA_BYTES:
            return EMPTY_METADATA
        try:
            return self._metadata_decoder.decode(data)
        except msgspec.DecodeError as e:
            raise DecodeError(f"stored metadata does not decode: {e}") from e

    def decode(
        self,
        type_name: str,
        schema_version: int,
        encoding: int,
        data: bytes,
        where: str = "",
        keys: DataKeys | None = None,
    ) -> Any:
        """The event object for stored bytes. ``where`` names the event in error messages;
        ``keys`` open sealed personal fields (a forgotten subject's read as ``Forgotten``)."""
        if encoding == ZLIB:
            try:
                data = zlib.decompress(data)
            except zlib.error as e:
                raise DecodeError(f"{where}type {type_name!r}: stored data is corrupt: {e}") from e
        elif encoding != PLAIN:
            if encoding in (SEALED, SEALED | ZLIB):
                return self._decode_sealed(type_name, schema_version, encoding, data, where, keys)
            raise DecodeError(f"{where}type {type_name!r}: unknown encoding {encoding}")
        known = self._event_class(type_name, where)
        if schema_version == known.version:
            try:
                return known.decoder.decode(data)
            except msgspec.DecodeError as e:
                raise DecodeError(
                    f"{where}type {type_name!r} schema version {schema_version}: stored data "
                    f"does not decode into {known.cls.__qualname__}: {e}"
                ) from e
        return self._upcast(type_name, schema_version, data, where)

    def fast_decoder(self, type_name: str) -> tuple[int, Callable[[bytes], Any] | None]:
        """The schema version of a registered type name and its typed decoder (a replay's
        fast path for ``PLAIN`` data at that version: what :meth:`decode` would do, without
        its checks); ``(-1, None)`` for a name with no class of its own. A decoder that raises
        means the row is to go through :meth:`decode`, which says what is wrong."""
        try:
            known = self._event_class(type_name, "")
        except UnknownEventType:
            return -1, None
        if known.decoder is None:
            return -1, None
        decode: Callable[[bytes], Any] = known.decoder.decode
        return known.version, decode

    def _event_class(self, type_name: str, where: str) -> _EventClass:
        """The class, schema version, typed decoder and fast check of a type name (cached)."""
        if self._generation != self.registry.generation:  # a class was (re)registered
            self._classes.clear()
            self._generation = self.registry.generation
        known = self._classes.get(type_name)
        if known is None:
            known = self._event_class_for(type_name, where)
        return known

    def _event_class_for(self, type_name: str, where: str) -> _EventClass:
        found = self.registry.get(type_name)
        if found is None:
            if self.upcasters.reads(type_name):  # a renamed type, reached through upcasters
                return _EventClass(type(None), 0, None, None, False)
            raise UnknownEventType(
                f"{where}no event class is registered for type {type_name!r}; import the module "
                "that defines it, or register an upcaster that renames it"
            )
        cls, version = found
        known = _EventClass(cls, version, json_decoder(cls), *fast_check(cls), personal_fields(cls))
        self._classes[type_name] = known
        return known

    def _upcast(self, type_name: str, schema_version: int, data: bytes, where: str) -> Any:
        try:
            fields = self._dict_decoder.decode(data)
        except msgspec.DecodeError as e:
            raise DecodeError(
                f"{where}type {type_name!r} schema version {schema_version}: stored data is not "
                f"a JSON object: {e}"
            ) from e

        def current(name: str) -> int | None:
            found = self.registry.get(name)
            return None if found is None else found[1]

        name, version, fields = self.upcasters.upcast(
            type_name, schema_version, fields, current, where
        )
        try:
            # strict, as the typed decoder of the fast path: upcasted data decodes by the same rules
            return convert(fields, self.registry.class_of(name))
        except (msgspec.ValidationError, UnknownEventType) as e:
            raise UpcastError(
                f"{where}type {type_name!r} schema version {schema_version}: upcasted to "
                f"{name!r} version {version}, which does not decode: {e}"
            ) from e

    def _decode_sealed(
        self,
        type_name: str,
        schema_version: int,
        encoding: int,
        data: bytes,
        where: str,
        keys: DataKeys | None,
    ) -> Any:
        """An event with sealed fields: opened with ``keys`` (``Forgotten`` where a key is
        destroyed), upcast if older, then converted as typed decoding would."""
        named = f"{where}type {type_name!r} schema version {schema_version}: "
        try:
            if encoding & ZLIB:
                data = zlib.decompress(data)
            fields = self._dict_decoder.decode(data)
        except (zlib.error, msgspec.DecodeError) as e:
            raise DecodeError(f"{named}stored data is corrupt: {e}") from e
        forgotten = open_fields(fields, DataKeys() if keys is None else keys, named)
        known = self._event_class(type_name, where)
        name = type_name
        if schema_version != known.version:
            versions = self.registry.get

            def current(name: str) -> int | None:
                found = versions(name)
                return None if found is None else found[1]

            name, _, fields = self.upcasters.upcast(
                type_name, schema_version, fields, current, where
            )
            forgotten = any(value is Forgotten for value in fields.values())
        cls = self.registry.class_of(name)
        if forgotten:
            return build(cls, fields, named)
        try:
            return convert(fields, cls)
        except msgspec.ValidationError as e:
            error = (
                DecodeError
                if name == type_name and schema_version == known.version
                else UpcastError
            )
            raise error(f"{named}stored data does not decode into {cls.__qualname__}: {e}") from e
