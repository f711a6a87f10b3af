"""The serialization format: msgspec JSON, typed decoding, optional zlib, upcasting on read.

A stored event is ``(type, schema_version, encoding, data, metadata)``: ``data`` is the
event's fields as a JSON object; ``encoding`` says which stages were applied to it
(``PLAIN`` or ``ZLIB``). Decoding goes straight into the registered class; older schema
versions pass through the upcaster chain first.

An event is stored only if it reads back equal to what was appended (see "Reading back as
written" below): NaN in an ``Any`` field, bytes in a ``str`` field or a tuple in a ``list``
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

import dataclasses
import functools
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from keyword import iskeyword
from math import isfinite
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
import msgspec.inspect as mi

from facta.errors import DecodeError, EventTooLarge, InvalidEvent, UnknownEventType, UpcastError
from facta.events import EMPTY_METADATA, EventRegistry, Metadata, default_registry
from facta.upcasting import Upcasters, default_upcasters

__all__ = ["DEFAULT_MAX_EVENT_SIZE", "PLAIN", "ZLIB", "Codec"]

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
    decoder: Any  # msgspec.json.Decoder of cls; None for a type renamed by upcasters
    check: _Check | None  # the fast read-back check; None: always decode and compare
    constrained: bool  # values that pass the check are decoded too, for the constraints


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
        self._metadata_check, _ = _metadata_check()
        self._dict_decoder = msgspec.json.Decoder(dict[str, Any])
        self._classes: dict[str, _EventClass] = {}
        self._generation = self.registry.generation

    def encode(self, stream_id: str, event: object) -> tuple[str, int, int, bytes]:
        """``(type name, schema version, encoding, data)`` for one event, checked for size.

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
        if len(data) > self.max_event_size:
            raise EventTooLarge(stream_id, name, len(data), self.max_event_size)
        if self.compress_above is not None and len(data) > self.compress_above:
            return name, version, ZLIB, zlib.compress(data, 1)
        return name, version, PLAIN, data

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
            found = None if written is None else _difference(written, read)
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
        known = _EventClass(cls, version, msgspec.json.Decoder(cls), *_fast_check(cls))
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
            return msgspec.convert(fields, self.registry.class_of(name))
        except (msgspec.ValidationError, UnknownEventType) as e:
            raise UpcastError(
                f"{where}type {type_name!r} schema version {schema_version}: upcasted to "
                f"{name!r} version {version}, which does not decode: {e}"
            ) from e


# -- Reading back as written -----------------------------------------------------------------
#
# msgspec encodes what it can and decodes by the field's declared type, so a value of another
# type can come back as something else: NaN as None (JSON has no NaN), bytes in a str field
# as base64 text, a tuple as a list, a large int in a float field rounded. The rule is that an
# event is stored only if it reads back equal to what was appended.
#
# Decoding and comparing is exact but costs more than the encoding. So each class gets, once,
# a fast check built from its annotations: it passes when every value is exactly of a type
# that the round trip gives back unchanged (a str in a str field, a finite float in a float
# field, JSON's own types in an Any field). Only what it does not pass, and classes it cannot
# model (__post_init__, custom types), is decoded and compared; a class with constrained
# fields (Meta(ge=0)) has what passes decoded, as the constraints are the decoder's to check.

_Check = Callable[[Any], bool]
_Rule = frozenset[type] | _Check  # the exact types that read back unchanged, or a predicate

_JSON_SCALARS = frozenset((str, int, bool, type(None)))
_MINUTE = timedelta(minutes=1)
_NO_TIME = timedelta(0)
_CONSTRAINTS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern")
_EXACT: dict[type[mi.Type], type] = {  # annotations whose values read back as they are
    mi.NoneType: type(None),
    mi.BoolType: bool,
    mi.IntType: int,  # any size: JSON integers are not bounded, nor is msgspec
    mi.StrType: str,
    mi.BytesType: bytes,
    mi.ByteArrayType: bytearray,
    mi.UUIDType: UUID,
    mi.DateType: date,
    mi.TimeDeltaType: timedelta,
}
_KEYS: dict[type[mi.Type], type] = {  # dict key annotations whose keys read back as they are
    mi.AnyType: str,
    mi.StrType: str,
    mi.IntType: int,
    mi.UUIDType: UUID,
}


class _Records(dict[type, "_Check | None"]):
    """The checks of the records (dataclasses, Structs) met while building one class's check."""

    constrained = False  # a field has constraints (Meta(ge=0)...): values are decoded too


def _fast_check(cls: type) -> tuple[_Check | None, bool]:
    """The fast read-back check of an event class (None if every event is to be decoded and
    compared), and whether events that pass it are to be decoded too, for constraints."""
    try:
        info = mi.type_info(cls)
    except (TypeError, ValueError):  # not something msgspec decodes: the decoder says why
        return None, False
    if not isinstance(info, mi.DataclassType | mi.StructType):
        return None, False
    records = _Records()
    return _record_rule(info, records), records.constrained


@functools.cache
def _metadata_check() -> tuple[_Check | None, bool]:
    """Metadata's fast check, built once (a codec is made per store: this takes 0.2 ms)."""
    return _fast_check(Metadata)


def _rule(annotation: mi.Type, records: _Records) -> _Rule | None:
    """The check of a value of one annotation, or None if it has none."""
    while isinstance(annotation, mi.Metadata):  # Annotated[...] with documentation only
        annotation = annotation.type
    if any(getattr(annotation, name, None) is not None for name in _CONSTRAINTS):
        records.constrained = True  # Meta(ge=0) and the like: the decoder checks them
    exact = _EXACT.get(type(annotation))
    if exact is not None:
        return frozenset((exact,))
    match annotation:
        case mi.AnyType():
            return _json_value
        case mi.FloatType():
            return _finite_float
        case mi.DecimalType():
            return _decimal_number
        case mi.DateTimeType(tz=tz):
            return _datetime_check(tz)
        case mi.TimeType(tz=tz):
            return _time_check(tz)
        case mi.EnumType(cls=cls):
            return frozenset((cls,))
        case mi.LiteralType(values=values):
            kinds = frozenset(type(value) for value in values)
            if not kinds <= {str, int, type(None)}:
                return None
            return lambda value: type(value) in kinds and value in values
        case mi.UnionType(types=types):
            return _union_rule([_rule(member, records) for member in types])
        case mi.ListType() | mi.SetType() | mi.FrozenSetType() | mi.VarTupleType():
            return _items_rule(annotation, records)
        case mi.TupleType(item_types=item_types):
            return _tuple_rule([_rule(item, records) for item in item_types])
        case mi.DictType():
            return _dict_rule(annotation, records)
        case mi.DataclassType() | mi.StructType():
            return _record_rule(annotation, records)
    return None  # memoryview, Raw, NamedTuple, TypedDict, custom types: decode and compare


def _record_rule(info: mi.DataclassType | mi.StructType, records: _Records) -> _Check | None:
    """The check of a dataclass or Struct: its exact class, then each field by its rule.

    The check is generated as one function of straight-line tests (as dataclasses generates
    ``__init__``): a loop over the fields calling a closure each costs as much as decoding.
    """
    cls = info.cls
    if cls in records:  # built already, or being built (a class that refers to itself)
        return records[cls]
    if hasattr(cls, "__post_init__") or not (
        dataclasses.is_dataclass(cls) or issubclass(cls, msgspec.Struct)
    ):  # decoding runs __post_init__ again, attrs classes their hooks: only a comparison tells
        records[cls] = None
        return None
    built: list[_Check] = []
    records[cls] = lambda value: bool(built) and built[0](value)
    namespace: dict[str, Any] = {"cls": cls}
    lines = ["def check(value):", "    if type(value) is not cls:", "        return False"]
    for index, field in enumerate(info.fields):
        rule = _rule(field.type, records)
        if rule is None:
            records[cls] = None
            return None
        rule_name = f"rule_{index}"
        if isinstance(rule, frozenset) and len(rule) == 1:
            (namespace[rule_name],) = rule
            failed = f"type(found) is not {rule_name}"
        elif isinstance(rule, frozenset):
            namespace[rule_name] = rule
            failed = f"type(found) not in {rule_name}"
        else:
            namespace[rule_name] = rule
            failed = f"not {rule_name}(found)"
        get = (
            f"value.{field.name}"
            if field.name.isidentifier() and not iskeyword(field.name)
            else f"getattr(value, {field.name!r})"
        )
        lines += [f"    found = {get}", f"    if {failed}:", "        return False"]
    lines.append("    return True")
    exec(compile("\n".join(lines), f"<read-back check of {cls.__qualname__}>", "exec"), namespace)
    check: _Check = namespace["check"]
    built.append(check)
    records[cls] = check
    return check


def _predicate(rule: _Rule) -> _Check:
    if not isinstance(rule, frozenset):
        return rule
    if len(rule) == 1:
        (kind,) = rule
        return lambda value: type(value) is kind
    return lambda value: type(value) in rule


def _union_rule(rules: list[_Rule | None]) -> _Rule | None:
    """A union's values pass if they pass one member's rule: JSON tells the members apart."""
    types: frozenset[type] = frozenset()
    predicates: list[_Check] = []
    for rule in rules:
        if rule is None:
            return None
        if isinstance(rule, frozenset):
            types |= rule
        else:
            predicates.append(rule)
    if not predicates:
        return types
    return lambda value: type(value) in types or any(passes(value) for passes in predicates)


def _items_rule(
    annotation: mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType,
    records: _Records,
) -> _Check | None:
    container = {
        mi.ListType: list,
        mi.SetType: set,
        mi.FrozenSetType: frozenset,
        mi.VarTupleType: tuple,
    }[type(annotation)]
    item = _rule(annotation.item_type, records)
    if item is None:
        return None
    each = _each(item)
    return lambda value: type(value) is container and each(value)


def _dict_rule(annotation: mi.DictType, records: _Records) -> _Check | None:
    key = _KEYS.get(type(annotation.key_type))
    value = _rule(annotation.value_type, records)
    if key is None or value is None or _rule(annotation.key_type, records) is None:
        return None
    if key is str and value is _json_value:  # dict[str, Any], as Metadata.user
        return _json_object
    keys, values = _each(frozenset((key,))), _each(value)
    return lambda found: type(found) is dict and keys(found) and values(found.values())


def _each(rule: _Rule) -> Callable[[Iterable[Any]], bool]:
    """Whether each of some values passes ``rule``: loops, twice as fast as ``all()`` here."""
    if rule is _json_value:
        return _json_values
    if not isinstance(rule, frozenset):
        return lambda values: all(map(rule, values))

    def each(values: Iterable[Any]) -> bool:
        for value in values:  # noqa: SIM110 (a loop: no generator on the hot path)
            if type(value) not in rule:
                return False
        return True

    return each


def _tuple_rule(rules: list[_Rule | None]) -> _Check | None:
    predicates = []
    for rule in rules:
        if rule is None:
            return None
        predicates.append(_predicate(rule))
    return lambda value: (
        type(value) is tuple
        and len(value) == len(predicates)
        and all(passes(item) for passes, item in zip(predicates, value, strict=False))
    )


def _json_value(value: Any) -> bool:
    """A value JSON gives back as it is, into an Any field: JSON's own types, finite floats."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if kind is float:
        return isfinite(value)
    if kind is list:
        return _json_values(value)
    if kind is dict:
        return _json_object(value)
    return False


def _json_values(values: Iterable[Any]) -> bool:
    for value in values:
        if type(value) not in _JSON_SCALARS and not _json_value(value):
            return False
    return True


def _json_object(value: Any) -> bool:
    if type(value) is not dict:
        return False
    for key, item in value.items():
        if type(key) is not str or (type(item) not in _JSON_SCALARS and not _json_value(item)):
            return False
    return True


def _finite_float(value: Any) -> bool:
    return type(value) is float and isfinite(value)


def _decimal_number(value: Any) -> bool:
    return type(value) is Decimal and not value.is_nan()  # NaN is never equal to itself


def _fixed_offset(zone: Any) -> bool:
    """A zone JSON keeps exactly: UTC, or a fixed offset of whole minutes (RFC 3339's)."""
    if zone is UTC:
        return True
    return type(zone) is timezone and zone.utcoffset(None) % _MINUTE == _NO_TIME


def _datetime_check(tz: bool | None) -> _Check:
    """Other zones read back as fixed offsets: equal instants, but only a comparison tells."""

    def check(value: Any) -> bool:
        if type(value) is not datetime:
            return False
        if value.tzinfo is None:
            return tz is not True
        return tz is not False and _fixed_offset(value.tzinfo)

    return check


def _time_check(tz: bool | None) -> _Check:
    def check(value: Any) -> bool:
        if type(value) is not time:
            return False
        if value.tzinfo is None:
            return tz is not True
        return tz is not False and _fixed_offset(value.tzinfo)

    return check


class _Difference(NamedTuple):
    """Where a value read back differs from the value written."""

    written: Any
    read: Any
    key: bool = False  # the difference is in a dict key, not a value
    path: str = ""  # e.g. ".items[2]", ".user['key']", built on the way back up

    def within(self, step: str) -> _Difference:
        return self._replace(path=step + self.path)

    def explained(self, declared: bool) -> str:
        """One line; ``declared``: the value's type is declared by a class (not metadata's)."""
        where = f"field {self.path.removeprefix('.')}" if self.path else "it"
        return (
            f"{where} {'has key' if self.key else 'is'} {_shown(self.written)}, which reads "
            f"back as {_shown(self.read)}{self.hint(declared)}"
        )

    def hint(self, declared: bool) -> str:
        written, read = self.written, self.read
        if isinstance(written, float) and not isfinite(written):
            return "; NaN and infinity have no JSON form"
        if isinstance(written, Decimal) and written.is_nan():
            return "; NaN is not equal to itself"
        if isinstance(written, int) and isinstance(read, float):
            return "; a float holds that int only approximately"
        if isinstance(written, datetime | time) and (written.utcoffset() or _NO_TIME) % _MINUTE:
            return "; JSON keeps UTC offsets to the minute"
        if type(read) is type(written):
            return ""
        if not declared:
            return "; metadata holds JSON values: str, int, float, bool, None, lists, dicts"
        kind = type(written).__qualname__
        if self.key:
            return f"; JSON keys are text: convert the key, or declare the key type ({kind})"
        return f"; convert it, or declare the type it holds ({kind})"


def _difference(written: Any, read: Any) -> _Difference | None:
    """The first place where ``read`` is not equal to ``written``, or None.

    Records (dataclasses, Structs) are compared field by field, whatever their ``__eq__``;
    lists, tuples and dicts item by item, to name the place; everything else with ``==``.
    """
    kind: type = type(written)
    if kind in _LEAVES:
        return None if _equal(written, read) else _Difference(written, read)
    if (kind is list or kind is tuple) and type(read) is kind and len(written) == len(read):
        for index, (item, item_read) in enumerate(zip(written, read, strict=True)):
            found = _difference(item, item_read)
            if found is not None:
                return found.within(f"[{index}]")
        return None
    if kind is dict and type(read) is dict and len(written) == len(read):
        for key, key_read in zip(written, read, strict=True):  # JSON keeps the order
            if not _equal(key, key_read):
                return _Difference(key, key_read, key=True)
            found = _difference(written[key], read[key_read])
            if found is not None:
                return found.within(f"[{key!r}]")
        return None
    names = _record_fields(kind)
    if names is not None and type(read) is kind:
        for name in names:
            found = _difference(getattr(written, name), getattr(read, name))
            if found is not None:
                return found.within(f".{name}")
        return None
    return None if _equal(written, read) else _Difference(written, read)


_LEAVES = frozenset((str, int, float, bool, type(None), bytes, UUID, Decimal, datetime, date))


def _equal(written: Any, read: Any) -> bool:
    try:
        return written is read or bool(written == read)
    except Exception:  # a user's __eq__, or a signalling Decimal NaN: not equal, then
        return False


@functools.lru_cache(maxsize=1024)
def _record_fields(kind: type) -> tuple[str, ...] | None:
    """The field names of a dataclass or Struct type, or None for any other type."""
    if issubclass(kind, msgspec.Struct):
        return kind.__struct_fields__
    if dataclasses.is_dataclass(kind):
        return tuple(field.name for field in dataclasses.fields(kind))
    return None


def _shown(value: Any) -> str:
    """A value and its type, short: dates and times in ISO form, to show their offset."""
    text = value.isoformat() if isinstance(value, date | time) else repr(value)
    if len(text) > 70:
        text = text[:67] + "..."
    return f"{text} ({type(value).__qualname__})"
