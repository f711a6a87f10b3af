"""Which fields of an event (or snapshot state) class are personal, and sealing them: pure, no I/O.

A class is read once (cached per class): its fields marked :data:`~facta.personal.Personal`,
the subject of each, and the names they have in JSON. Classes without personal fields get
None, and cost nothing more.

A personal field is stored *sealed*, in place of its value::

    {"$facta_sealed": "<base64 of nonce + AES-GCM ciphertext>", "subject": "c-1", "key": "<key id>"}

The ciphertext is the value's JSON; the subject and key id travel in the clear beside it, so a
reader knows which key opens it without knowing the class, and the cipher binds them (a sealed
value moved to another subject or key does not open). The event's ``encoding`` has the
:data:`SEALED` stage set, so ordinary events are never searched for sealed fields.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import threading
import typing
import uuid
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import msgspec

from facta.errors import DecodeError, InvalidEvent
from facta.event_classes import decode_hook, is_pydantic_model
from facta.personal.cipher import seal, unseal
from facta.personal.data_keys import DataKeys
from facta.personal.markers import STREAM, Forgotten, PersonalMarker, Subject

__all__ = [
    "MARK",
    "SEALED",
    "ZLIB",
    "PersonalField",
    "PersonalFields",
    "build",
    "open_fields",
    "personal_fields",
    "redact",
    "refs",
    "refs_of",
]

SEALED = 2  # the codec stage: some fields of the JSON are sealed (combines with ZLIB = 1)
ZLIB = 1
MARK = "$facta_sealed"  # the key that makes a JSON object a sealed value
REDACTED = "<personal data>"

_dict_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


class PersonalField(NamedTuple):
    """One personal field: its attribute name, its name in JSON, and the attribute holding its
    subject (None: the event's stream is the subject)."""

    name: str
    key: str
    subject: str | None


class _Field(NamedTuple):
    """Any field of a class, as building an instance with forgotten values needs it."""

    name: str
    key: str
    type: Any
    required: bool


class PersonalFields:
    """The personal fields of one class, and how to seal them."""

    def __init__(self, cls: type, fields: tuple[PersonalField, ...], every: tuple[_Field, ...]):
        self.cls = cls
        self.fields = fields
        self.every = every

    def __repr__(self) -> str:
        names = ", ".join(f.name for f in self.fields)
        return f"PersonalFields({self.cls.__qualname__}: {names})"

    def subjects(self, obj: object, stream_id: str, what: str) -> list[str]:
        """The subject of each personal field of ``obj`` (stored under ``stream_id``), in
        field order; ``InvalidEvent`` naming ``what`` for a subject that is not an id."""
        found = []
        for field in self.fields:
            value: object = stream_id
            if field.subject is not None:
                value = getattr(obj, field.subject, None)
                if isinstance(value, uuid.UUID) or (type(value) is int):
                    value = str(value)
            if not isinstance(value, str) or not value or "\x00" in value:
                held = "the stream id" if field.subject is None else f"field {field.subject!r}"
                raise InvalidEvent(
                    f"{what}: personal field {field.name!r} belongs to the subject in {held}, "
                    f"which is {value!r}; a subject is a non-empty str (without NUL), a UUID or "
                    "an int; nothing was written"
                )
            found.append(value)
        return found

    def seal(
        self, obj: object, data: bytes, stream_id: str, keys: DataKeys | None, what: str
    ) -> bytes:
        """``data`` (the JSON of ``obj``) with every personal field sealed under its subject's
        current data key from ``keys``."""
        if keys is None:
            raise InvalidEvent(
                f"{what} has personal fields ({', '.join(f.name for f in self.fields)}): it is "
                "stored through an event store opened with a key provider "
                "(facta.connect(url, keys=...)); nothing was written"
            )
        fields = _dict_decoder.decode(data)
        subjects = self.subjects(obj, stream_id, what)
        for field, subject in zip(self.fields, subjects, strict=True):
            if field.key not in fields:  # left out (omit_defaults): there is nothing to seal
                continue
            key = keys.for_subject(subject)
            plaintext = _encoder.encode(fields[field.key])
            sealed = seal(key.cipher, plaintext, _associated(subject, key.key_id))
            fields[field.key] = {
                MARK: base64.b64encode(sealed).decode("ascii"),
                "subject": subject,
                "key": key.key_id,
            }
        return _encoder.encode(fields)


_cache: dict[type, PersonalFields | None] = {}
_cache_lock = threading.Lock()


def personal_fields(cls: type) -> PersonalFields | None:
    """The personal fields of ``cls`` (cached), None when it has none (or is no event class).

    ``InvalidEvent`` for a marking that cannot work: a personal field without a subject, a
    subject that is not a field, a personal field nested in another class's field, ...
    """
    try:
        return _cache[cls]
    except KeyError:
        pass
    except TypeError:  # unhashable: no event class
        return None
    found = _analyse(cls)
    with _cache_lock:
        _cache[cls] = found
    return found


def _analyse(cls: type) -> PersonalFields | None:
    every = _fields_of(cls)
    if every is None:
        return None
    markers = {f.name: _markers(f.type) for f in every}
    personal = {name: ms for name, ms in markers.items() if any(_is_personal(m) for m in ms)}
    subjects = [name for name, ms in markers.items() if any(m is Subject for m in ms)]
    name = cls.__qualname__
    _refuse_nested(cls, every, set(personal))
    if not personal:  # a subject may be marked all the same: nothing to seal
        return None
    if issubclass(cls, msgspec.Struct) and cls.__struct_config__.array_like:
        raise InvalidEvent(
            f"{name} has personal fields but is an array_like Struct: its fields have no "
            "names in JSON to seal them under; drop array_like"
        )
    if len(subjects) > 1:
        raise InvalidEvent(
            f"{name} marks {len(subjects)} fields as Subject ({', '.join(subjects)}); mark one, "
            "and name the others with Personal(subject='field')"
        )
    by_name = {f.name: f for f in every}
    fields = []
    for field in every:
        if field.name not in personal:
            continue
        marker = next(m for m in personal[field.name] if _is_personal(m))
        subject: str | None
        if marker.subject is STREAM:
            subject = None
        elif isinstance(marker.subject, str):
            subject = marker.subject
        elif subjects:
            subject = subjects[0]
        else:
            raise InvalidEvent(
                f"{name}.{field.name} is personal but names no subject: mark the field holding "
                f"the person's id with Annotated[str, facta.Subject], or write "
                "Personal(subject='customer_id') (Personal(subject=facta.personal.STREAM) for "
                "the stream's id)"
            )
        if subject is not None:
            if subject not in by_name:
                raise InvalidEvent(
                    f"{name}.{field.name}: its subject field {subject!r} is not a field of {name}"
                )
            if subject in personal:
                raise InvalidEvent(
                    f"{name}.{subject} is the subject of {field.name!r}, so it cannot be personal "
                    "itself: a subject's id is stored in the clear beside each sealed field (use "
                    "an id that is not personal data, not an email address)"
                )
        fields.append(PersonalField(field.name, field.key, subject))
    return PersonalFields(cls, tuple(fields), every)


def _fields_of(cls: object) -> tuple[_Field, ...] | None:
    """Every field of an event class (name, JSON name, annotation, required); None for a
    class of another kind."""
    if not isinstance(cls, type):
        return None
    if issubclass(cls, msgspec.Struct):
        hints = _hints(cls)
        return tuple(
            _Field(f.name, f.encode_name, hints.get(f.name, f.type), f.required)
            for f in msgspec.structs.fields(cls)
        )
    if dataclasses.is_dataclass(cls):
        hints = _hints(cls)
        return tuple(
            _Field(
                f.name,
                f.name,
                hints.get(f.name, Any),
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            )
            for f in dataclasses.fields(cls)
        )
    if is_pydantic_model(cls):
        model_fields: dict[str, Any] = cls.model_fields  # type: ignore[attr-defined]
        return tuple(
            _Field(
                name,
                info.alias or name,
                typing.Annotated[(info.annotation, *info.metadata)]
                if info.metadata
                else info.annotation,
                info.is_required(),
            )
            for name, info in model_fields.items()
        )
    return None


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as e:
        raise InvalidEvent(
            f"the annotations of {cls.__qualname__} cannot be resolved ({e}), so facta cannot "
            "tell which of its fields are personal; define the names they use"
        ) from e


def _markers(annotation: Any) -> tuple[Any, ...]:
    """The Annotated metadata of a field's own annotation (not of types nested in it)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return tuple(annotation.__metadata__)
    return ()


def _is_personal(marker: object) -> bool:
    return isinstance(marker, PersonalMarker)


def _refuse_nested(cls: type, every: Iterable[_Field], personal: set[str]) -> None:
    """``InvalidEvent`` when a class nested in a field (not itself personal) has personal
    fields: only an event's own fields are sealed, and a nested marking would be ignored."""
    seen: set[type] = {cls}
    for field in every:
        if field.name in personal:
            continue
        for inner in _classes_in(field.type, seen):
            try:
                nested = _fields_of(inner) or ()
            except InvalidEvent:  # unresolvable annotations: msgspec reports them itself
                continue
            for inner_field in nested:
                if any(_is_personal(m) for m in _markers(inner_field.type)):
                    raise InvalidEvent(
                        f"{inner.__qualname__}.{inner_field.name} is marked personal, but "
                        f"{inner.__qualname__} is held by {cls.__qualname__}.{field.name}: only "
                        f"an event's own fields are sealed. Mark {field.name!r} itself "
                        "Personal, or move the personal field up into the event"
                    )


def _classes_in(annotation: Any, seen: set[type]) -> Iterator[type]:
    """The event-like classes an annotation mentions, however deep (each once)."""
    todo = [annotation]
    while todo:
        item = todo.pop()
        if isinstance(item, type) and item not in seen and _fields_of_kind(item):
            seen.add(item)
            yield item
            with contextlib.suppress(InvalidEvent):  # unresolvable: msgspec reports it
                todo.extend(inner.type for inner in _fields_of(item) or ())
        todo.extend(typing.get_args(item))


def _fields_of_kind(cls: type) -> bool:
    return (
        issubclass(cls, msgspec.Struct) or dataclasses.is_dataclass(cls) or is_pydantic_model(cls)
    )


# -- reading ---------------------------------------------------------------------------------


def _associated(subject: str, key_id: str) -> bytes:
    return (
        b"facta.sealed\x00" + subject.encode("utf-8", "surrogatepass") + b"\x00" + key_id.encode()
    )


def _is_sealed(value: object) -> bool:
    return type(value) is dict and MARK in value


def refs(fields: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(subject, key id)`` of every sealed value among ``fields`` (a decoded JSON object)."""
    for value in fields.values():
        if _is_sealed(value):
            subject, key_id = value.get("subject"), value.get("key")
            if isinstance(subject, str) and isinstance(key_id, str):
                yield subject, key_id


def refs_of(encoding: int, data: bytes) -> set[tuple[str, str]]:
    """The ``(subject, key id)`` pairs a stored event's (or snapshot's) sealed fields need;
    empty for data without the SEALED stage or that does not decode (its decode says why)."""
    if not encoding & SEALED:
        return set()
    try:
        if encoding & ZLIB:
            data = zlib.decompress(data)
        return set(refs(_dict_decoder.decode(data)))
    except (zlib.error, msgspec.DecodeError):
        return set()


def open_fields(fields: dict[str, Any], keys: DataKeys, where: str) -> bool:
    """Replace every sealed value among ``fields`` with its value, or with ``Forgotten`` when
    its key is destroyed; whether any was forgotten. ``DecodeError`` for a damaged one."""
    forgotten = False
    for name, value in fields.items():
        if not _is_sealed(value):
            continue
        subject, key_id, text = value.get("subject"), value.get("key"), value.get(MARK)
        if not (isinstance(subject, str) and isinstance(key_id, str) and isinstance(text, str)):
            raise DecodeError(f"{where}sealed field {name!r} is malformed: {value!r}")
        key = keys.lookup(subject, key_id)
        if key is None:
            fields[name] = Forgotten
            forgotten = True
            continue
        try:
            sealed = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as e:
            raise DecodeError(f"{where}sealed field {name!r} is damaged: {e}") from e
        plaintext = unseal(key.cipher, sealed, _associated(subject, key_id))
        if plaintext is None:
            raise DecodeError(
                f"{where}sealed field {name!r} of subject {subject!r} does not open with its "
                f"data key {key_id!r}: the stored bytes are damaged"
            )
        try:
            fields[name] = msgspec.json.decode(plaintext)
        except msgspec.DecodeError as e:
            raise DecodeError(f"{where}sealed field {name!r} holds no JSON value: {e}") from e
    return forgotten


def build(cls: type, fields: dict[str, Any], where: str) -> Any:
    """An instance of ``cls`` from decoded JSON ``fields`` of which some are ``Forgotten``:
    every other field is converted to its type as decoding would; a forgotten one holds
    ``Forgotten`` whatever its type. Checks in ``__post_init__`` (or a pydantic model's
    validators) that would refuse ``Forgotten`` are passed by, where the class allows it."""
    every = _every.get(cls)
    if every is None:
        every = _fields_of(cls)
        if every is None:
            raise DecodeError(f"{where}{cls!r} is not an event class")
        _every[cls] = every
    values: dict[str, Any] = {}
    pydantic_model = is_pydantic_model(cls)
    for field in every:
        if field.key not in fields:
            if field.required:
                raise DecodeError(
                    f"{where}stored data does not decode into {cls.__qualname__}: "
                    f"Object missing required field `{field.key}`"
                )
            continue
        value = fields[field.key]
        if value is Forgotten:
            values[field.name] = Forgotten
            continue
        try:
            values[field.name] = (
                _pydantic_value(cls, field, value)
                if pydantic_model
                else msgspec.convert(value, field.type, dec_hook=decode_hook)
            )
        except (msgspec.ValidationError, ValueError) as e:
            raise DecodeError(
                f"{where}stored data does not decode into {cls.__qualname__}: {e} - at "
                f"`$.{field.key}`"
            ) from e
    if pydantic_model:
        return cls.model_construct(**values)  # type: ignore[attr-defined]
    try:
        return cls(**values)
    except Exception as e:
        if dataclasses.is_dataclass(cls):  # its __post_init__ refused Forgotten: pass it by
            instance = object.__new__(cls)
            for name, value in values.items():
                object.__setattr__(instance, name, value)
            return instance
        raise DecodeError(
            f"{where}{cls.__qualname__}(...) refused facta.Forgotten in a forgotten personal "
            f"field: {type(e).__name__}: {e}. Let its __post_init__ pass facta.Forgotten by "
            "(if value is facta.Forgotten: ...)"
        ) from e


_every: dict[type, tuple[_Field, ...]] = {}  # build's view of each class (cached)
_adapters: dict[tuple[type, str], Any] = {}


def _pydantic_value(cls: type, field: _Field, value: Any) -> Any:
    """One field's value validated as a pydantic model would (its TypeAdapter, cached)."""
    adapter = _adapters.get((cls, field.name))
    if adapter is None:
        from pydantic import TypeAdapter  # a pydantic model: pydantic is imported already

        adapter = _adapters[cls, field.name] = TypeAdapter(field.type)
    return adapter.validate_python(value)


def redact(text: str, event: object) -> str:
    """``text`` (an error message about ``event``) with the values of the event's personal
    fields replaced by ``<personal data>``: what facta stores about a failure (dead letters,
    a projection's error) never holds them. Values shorter than 3 characters are left."""
    found = personal_fields(type(event))
    if found is None:
        return text
    for field in found.fields:
        value = getattr(event, field.name, None)
        if value is None or value is Forgotten:
            continue
        shown = {str(value), repr(value)}
        with contextlib.suppress(TypeError, msgspec.EncodeError):
            shown.add(_encoder.encode(value).decode())
        for item in sorted(shown, key=len, reverse=True):
            if len(item) >= 3:
                text = text.replace(item, REDACTED)
    return text
