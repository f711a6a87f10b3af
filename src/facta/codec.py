"""The serialization format: msgspec JSON, typed decoding, optional zlib, upcasting on read.

A stored event is ``(type, schema_version, encoding, data, metadata)``: ``data`` is the
event's fields as a JSON object; ``encoding`` says which stages were applied to it
(``PLAIN`` or ``ZLIB``). Decoding goes straight into the registered class; older schema
versions pass through the upcaster chain first.

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
from typing import Any

import msgspec

from facta.errors import DecodeError, EventTooLarge, InvalidEvent, UnknownEventType, UpcastError
from facta.events import EMPTY_METADATA, EventRegistry, Metadata, default_registry
from facta.upcasting import Upcasters, default_upcasters

__all__ = ["DEFAULT_MAX_EVENT_SIZE", "PLAIN", "ZLIB", "Codec"]

PLAIN = 0
ZLIB = 1
DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024  # as KurrentDB

_EMPTY_METADATA_BYTES = b"{}"


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
        self._encoder = msgspec.json.Encoder()
        self._metadata_decoder = msgspec.json.Decoder(Metadata)
        self._dict_decoder = msgspec.json.Decoder(dict[str, Any])
        self._decoders: dict[str, tuple[type, int, msgspec.json.Decoder[Any]]] = {}
        self._generation = self.registry.generation

    def encode(self, stream_id: str, event: object) -> tuple[str, int, int, bytes]:
        """``(type name, schema version, encoding, data)`` for one event, checked for size.

        The data is decoded once before it is accepted: values that encode but never decode
        (NaN, a str in an int field) would otherwise be stored and fail every later read.
        """
        try:
            name, version = self.registry.type_of(event)
        except InvalidEvent as e:
            raise InvalidEvent(f"stream {stream_id!r}: {e}; nothing was written") from None
        try:
            data = self._encoder.encode(event)
        except (TypeError, ValueError, msgspec.EncodeError) as e:
            raise InvalidEvent(
                f"event {name!r} for stream {stream_id!r} cannot be encoded: {e}; "
                "nothing was written"
            ) from e
        cls, _, decoder = self._decoder(name, "")
        try:
            decoder.decode(data)
        except msgspec.DecodeError as e:
            raise InvalidEvent(
                f"event {name!r} for stream {stream_id!r} would not decode back into "
                f"{cls.__qualname__}: {e} (NaN and infinity have no JSON form; check the "
                "values' types); nothing was written"
            ) from e
        if len(data) > self.max_event_size:
            raise EventTooLarge(stream_id, name, len(data), self.max_event_size)
        if self.compress_above is not None and len(data) > self.compress_above:
            return name, version, ZLIB, zlib.compress(data, 1)
        return name, version, PLAIN, data

    def encode_metadata(self, stream_id: str, metadata: Metadata) -> bytes:
        """The stored form of an event's metadata."""
        if metadata is EMPTY_METADATA:
            return _EMPTY_METADATA_BYTES
        try:
            return self._encoder.encode(metadata)
        except (TypeError, ValueError, msgspec.EncodeError) as e:
            raise InvalidEvent(
                f"metadata for stream {stream_id!r} cannot be encoded: {e}; nothing was written"
            ) from e

    def decode_metadata(self, data: bytes) -> Metadata:
        """The metadata of a stored event."""
        if data == _EMPTY_METADATA_BYTES:
            return EMPTY_METADATA
        try:
            return self._metadata_decoder.decode(data)
        except msgspec.DecodeError as e:
            raise DecodeError(f"stored metadata does not decode: {e}") from e

    def decode(
        self, type_name: str, schema_version: int, encoding: int, data: bytes, where: str = ""
    ) -> Any:
        """The event object for stored bytes. ``where`` names the event in error messages."""
        if encoding == ZLIB:
            try:
                data = zlib.decompress(data)
            except zlib.error as e:
                raise DecodeError(f"{where}type {type_name!r}: stored data is corrupt: {e}") from e
        elif encoding != PLAIN:
            raise DecodeError(f"{where}type {type_name!r}: unknown encoding {encoding}")
        cls, version, decoder = self._decoder(type_name, where)
        if schema_version == version:
            try:
                return decoder.decode(data)
            except msgspec.DecodeError as e:
                raise DecodeError(
                    f"{where}type {type_name!r} schema version {schema_version}: stored data "
                    f"does not decode into {cls.__qualname__}: {e}"
                ) from e
        return self._upcast(type_name, schema_version, data, where)

    def _decoder(self, type_name: str, where: str) -> tuple[type, int, Any]:
        """The class, schema version and typed decoder of a type name (cached)."""
        if self._generation != self.registry.generation:  # a class was (re)registered
            self._decoders.clear()
            self._generation = self.registry.generation
        entry: tuple[type, int, Any] | None = self._decoders.get(type_name)
        if entry is None:
            entry = self._decoder_for(type_name, where)
        return entry

    def _decoder_for(self, type_name: str, where: str) -> tuple[type, int, Any]:
        found = self.registry.get(type_name)
        if found is None:
            if self.upcasters.reads(type_name):  # a renamed type, reached through upcasters
                return (type(None), 0, None)
            raise UnknownEventType(
                f"{where}no event class is registered for type {type_name!r}; import the module "
                "that defines it, or register an upcaster that renames it"
            )
        entry: tuple[type, int, Any] = (found[0], found[1], msgspec.json.Decoder(found[0]))
        self._decoders[type_name] = entry
        return entry

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
            return msgspec.convert(fields, self.registry.class_of(name))
        except (msgspec.ValidationError, UnknownEventType) as e:
            raise UpcastError(
                f"{where}type {type_name!r} schema version {schema_version}: upcasted to "
                f"{name!r} version {version}, which does not decode: {e}"
            ) from e
