"""Sealing personal fields into an event's JSON and opening them again: pure, no I/O.

A personal field (:mod:`facta.personal.fields`) is stored *sealed*, in place of its value::

    {"$facta_sealed": "<base64 of nonce + AES-GCM ciphertext>", "subject": "c-1", "key": "<key id>"}

The ciphertext is the value's JSON; the subject and key id travel in the clear beside it, so a
reader knows which key opens it without knowing the class, and the cipher binds them (a sealed
value moved to another subject or key does not open). The event's ``encoding`` has the
:data:`SEALED` stage set, so ordinary events are never searched for sealed fields. A sealed
value whose key is destroyed opens as :data:`~facta.personal.Forgotten`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import zlib
from collections.abc import Iterator
from typing import Any

import msgspec

from facta.errors import DecodeError, InvalidEvent
from facta.event_classes import decode_hook, is_pydantic_model
from facta.personal.cipher import seal, unseal
from facta.personal.data_keys import DataKeys
from facta.personal.fields import FieldInfo, PersonalFields, fields_of, personal_fields
from facta.personal.markers import Forgotten

__all__ = [
    "MARK",
    "SEALED",
    "ZLIB",
    "build",
    "open_fields",
    "redact",
    "refs",
    "refs_of",
    "seal_fields",
]

SEALED = 2  # the codec stage: some fields of the JSON are sealed (combines with ZLIB = 1)
ZLIB = 1
MARK = "$facta_sealed"  # the key that makes a JSON object a sealed value
REDACTED = "<personal data>"

_dict_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


def seal_fields(
    personal: PersonalFields,
    obj: object,
    data: bytes,
    stream_id: str,
    keys: DataKeys | None,
    what: str,
) -> bytes:
    """``data`` (the JSON of ``obj``, stored under ``stream_id``) with each of the
    ``personal`` fields sealed under its subject's current data key from ``keys``;
    ``InvalidEvent`` naming ``what`` without keys."""
    if keys is None:
        raise InvalidEvent(
            f"{what} has personal fields ({', '.join(f.name for f in personal.fields)}): it is "
            "stored through an event store opened with a key provider "
            "(facta.connect(url, keys=...)); nothing was written"
        )
    fields = _dict_decoder.decode(data)
    subjects = personal.subjects(obj, stream_id, what)
    for field, subject in zip(personal.fields, subjects, strict=True):
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
        every = fields_of(cls)
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


_every: dict[type, tuple[FieldInfo, ...]] = {}  # build's view of each class (cached)
_adapters: dict[tuple[type, str], Any] = {}


def _pydantic_value(cls: type, field: FieldInfo, value: Any) -> Any:
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
