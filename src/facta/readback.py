"""Reading back as written: the checks that keep an event the codec could not give back equal
from being stored.

msgspec encodes what it can and decodes by the field's declared type, so a value of another
type can come back as something else: NaN as None (JSON has no NaN), bytes in a str field as
base64 text, a tuple as a list, a large int in a float field rounded. The rule is that an
event is stored only if it reads back equal to what was appended.

Decoding and comparing is exact but costs more than the encoding. So each class gets, once, a
fast check built from its annotations (:func:`fast_check`): it passes when every value is
exactly of a type that the round trip gives back unchanged (a str in a str field, a finite
float in a float field, JSON's own types in an Any field). Only what it does not pass, and
classes it cannot model (__post_init__, custom types), is decoded and compared
(:func:`difference`); a class with constrained fields (Meta(ge=0)) has what passes decoded,
as the constraints are the decoder's to check. A pydantic model is checked as a dataclass with
the same fields would be, unless something of its own may change its values on the way
(validators, serializers, aliases, excluded or extra fields). Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from keyword import iskeyword
from math import isfinite
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
import msgspec.inspect as mi

from facta.event_classes import is_pydantic_model
from facta.events import Metadata

__all__ = ["Check", "Difference", "difference", "fast_check", "metadata_check"]

Check = Callable[[Any], bool]
_Rule = frozenset[type] | Check  # the exact types that read back unchanged, or a predicate

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


class _Records(dict[type, "Check | None"]):
    """The checks of the records (dataclasses, Structs, pydantic models) met while building one
    class's check."""

    constrained = False  # a field has constraints (Meta(ge=0)...): values are decoded too
    text_bytes = False  # within a pydantic model that reads bytes from JSON as UTF-8 text


def fast_check(cls: type) -> tuple[Check | None, bool]:
    """The fast read-back check of an event class (None if every event is to be decoded and
    compared), and whether events that pass it are to be decoded too, for constraints."""
    records = _Records()
    if is_pydantic_model(cls):
        return _model_rule(cls, records), records.constrained
    try:
        info = mi.type_info(cls)
    except (TypeError, ValueError):  # not something msgspec decodes: the decoder says why
        return None, False
    if not isinstance(info, mi.DataclassType | mi.StructType):
        return None, False
    return _record_rule(info, records), records.constrained


@functools.cache
def metadata_check() -> tuple[Check | None, bool]:
    """Metadata's fast check, built once (a codec is made per store: this takes 0.2 ms)."""
    return fast_check(Metadata)


def _rule(annotation: mi.Type, records: _Records) -> _Rule | None:
    """The check of a value of one annotation, or None if it has none."""
    while isinstance(annotation, mi.Metadata):  # Annotated[...] with documentation only
        annotation = annotation.type
    if any(getattr(annotation, name, None) is not None for name in _CONSTRAINTS):
        records.constrained = True  # Meta(ge=0) and the like: the decoder checks them
    exact = _EXACT.get(type(annotation))
    if exact is not None:
        if records.text_bytes and exact in (bytes, bytearray):
            return None  # bytes to base64 text and back as UTF-8: only a comparison tells
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
        case mi.CustomType(cls=cls) if is_pydantic_model(cls):
            return _model_rule(cls, records)
    return None  # memoryview, Raw, NamedTuple, TypedDict, custom types: decode and compare


def _record_rule(info: mi.DataclassType | mi.StructType, records: _Records) -> Check | None:
    """The check of a dataclass or Struct: its exact class, then each field by its rule."""
    cls = info.cls
    if cls in records:  # built already, or being built (a class that refers to itself)
        return records[cls]
    if hasattr(cls, "__post_init__") or not (
        dataclasses.is_dataclass(cls) or issubclass(cls, msgspec.Struct)
    ):  # decoding runs __post_init__ again, attrs classes their hooks: only a comparison tells
        records[cls] = None
        return None
    return _fields_rule(cls, [(field.name, field.type) for field in info.fields], records)


def _model_rule(cls: type, records: _Records) -> Check | None:
    """The check of a pydantic model, as of a dataclass with the same fields; None if the
    model may change a value on its way to JSON and back, or has a field msgspec cannot type.
    """
    if cls in records:  # built already, or being built (a model that refers to itself)
        return records[cls]
    fields = _model_fields(cls, records)
    if fields is None:
        records[cls] = None
        return None
    config = cls.model_config  # type: ignore[attr-defined]
    outer, records.text_bytes = records.text_bytes, config.get("val_json_bytes") != "base64"
    try:
        return _fields_rule(cls, fields, records)
    finally:
        records.text_bytes = outer


def _model_fields(cls: Any, records: _Records) -> list[tuple[str, mi.Type]] | None:
    """A pydantic model's fields and their types, or None if the model has something of its
    own that may change values on the way (validators, serializers, computed fields, aliases,
    excluded or extra fields) or a field of a type msgspec does not know (``EmailStr``...)."""
    decorators = cls.__pydantic_decorators__
    if any(getattr(decorators, kind.name) for kind in dataclasses.fields(decorators)):
        return None
    if cls.model_config.get("extra") == "allow":
        return None
    fields = []
    for name, info in cls.model_fields.items():
        if info.alias or info.validation_alias or info.serialization_alias or info.exclude:
            return None
        try:
            fields.append((name, mi.type_info(info.annotation)))
        except (TypeError, ValueError):
            return None
        if info.metadata:  # Field(ge=0), Annotated[int, Gt(0)]...: pydantic checks them
            records.constrained = True
    return fields


def _fields_rule(cls: type, fields: list[tuple[str, mi.Type]], records: _Records) -> Check | None:
    """The check of a record class: its exact class, then each field by its rule.

    The check is generated as one function of straight-line tests (as dataclasses generates
    ``__init__``): a loop over the fields calling a closure each costs as much as decoding.
    """
    built: list[Check] = []
    records[cls] = lambda value: bool(built) and built[0](value)
    namespace: dict[str, Any] = {"cls": cls}
    lines = ["def check(value):", "    if type(value) is not cls:", "        return False"]
    for index, (name, annotation) in enumerate(fields):
        rule = _rule(annotation, records)
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
            f"value.{name}"
            if name.isidentifier() and not iskeyword(name)
            else f"getattr(value, {name!r})"
        )
        lines += [f"    found = {get}", f"    if {failed}:", "        return False"]
    lines.append("    return True")
    exec(compile("\n".join(lines), f"<read-back check of {cls.__qualname__}>", "exec"), namespace)
    check: Check = namespace["check"]
    built.append(check)
    records[cls] = check
    return check


def _predicate(rule: _Rule) -> Check:
    if not isinstance(rule, frozenset):
        return rule
    if len(rule) == 1:
        (kind,) = rule
        return lambda value: type(value) is kind
    return lambda value: type(value) in rule


def _union_rule(rules: list[_Rule | None]) -> _Rule | None:
    """A union's values pass if they pass one member's rule: JSON tells the members apart."""
    types: frozenset[type] = frozenset()
    predicates: list[Check] = []
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
) -> Check | None:
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


def _dict_rule(annotation: mi.DictType, records: _Records) -> Check | None:
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


def _tuple_rule(rules: list[_Rule | None]) -> Check | None:
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


def _datetime_check(tz: bool | None) -> Check:
    """Other zones read back as fixed offsets: equal instants, but only a comparison tells."""

    def check(value: Any) -> bool:
        if type(value) is not datetime:
            return False
        if value.tzinfo is None:
            return tz is not True
        return tz is not False and _fixed_offset(value.tzinfo)

    return check


def _time_check(tz: bool | None) -> Check:
    def check(value: Any) -> bool:
        if type(value) is not time:
            return False
        if value.tzinfo is None:
            return tz is not True
        return tz is not False and _fixed_offset(value.tzinfo)

    return check


class Difference(NamedTuple):
    """Where a value read back differs from the value written."""

    written: Any
    read: Any
    key: bool = False  # the difference is in a dict key, not a value
    path: str = ""  # e.g. ".items[2]", ".user['key']", built on the way back up

    def within(self, step: str) -> Difference:
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
        if isinstance(written, bytes) and read == base64.b64encode(written):
            return (
                "; a pydantic model reads bytes from JSON as UTF-8 text unless its model_config "
                "says val_json_bytes='base64'"
            )
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


def difference(written: Any, read: Any) -> Difference | None:
    """The first place where ``read`` is not equal to ``written``, or None.

    Records (dataclasses, Structs) are compared field by field, whatever their ``__eq__``;
    lists, tuples and dicts item by item, to name the place; everything else with ``==``.
    """
    kind: type = type(written)
    if kind in _LEAVES:
        return None if _equal(written, read) else Difference(written, read)
    if (kind is list or kind is tuple) and type(read) is kind and len(written) == len(read):
        for index, (item, item_read) in enumerate(zip(written, read, strict=True)):
            found = difference(item, item_read)
            if found is not None:
                return found.within(f"[{index}]")
        return None
    if kind is dict and type(read) is dict and len(written) == len(read):
        for key, key_read in zip(written, read, strict=True):  # JSON keeps the order
            if not _equal(key, key_read):
                return Difference(key, key_read, key=True)
            found = difference(written[key], read[key_read])
            if found is not None:
                return found.within(f"[{key!r}]")
        return None
    names = _record_fields(kind)
    if names is not None and type(read) is kind:
        for name in names:
            found = difference(getattr(written, name), getattr(read, name))
            if found is not None:
                return found.within(f".{name}")
        return None
    return None if _equal(written, read) else Difference(written, read)


_LEAVES = frozenset((str, int, float, bool, type(None), bytes, UUID, Decimal, datetime, date))


def _equal(written: Any, read: Any) -> bool:
    try:
        return written is read or bool(written == read)
    except Exception:  # a user's __eq__, or a signalling Decimal NaN: not equal, then
        return False


@functools.lru_cache(maxsize=1024)
def _record_fields(kind: type) -> tuple[str, ...] | None:
    """The field names of a dataclass, Struct or pydantic model type, or None for any other."""
    if issubclass(kind, msgspec.Struct):
        return kind.__struct_fields__
    if dataclasses.is_dataclass(kind):
        return tuple(field.name for field in dataclasses.fields(kind))
    if is_pydantic_model(kind):
        return tuple(kind.model_fields)  # type: ignore[attr-defined]
    return None


def _shown(value: Any) -> str:
    """A value and its type, short: dates and times in ISO form, to show their offset."""
    text = value.isoformat() if isinstance(value, date | time) else repr(value)
    if len(text) > 70:
        text = text[:67] + "..."
    return f"{text} ({type(value).__qualname__})"
