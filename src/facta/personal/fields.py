"""Which fields of an event (or snapshot state) class are personal, and whose: pure, no I/O.

A class is read once (cached per class): its fields marked :data:`~facta.personal.Personal`,
the subject of each, and the names they have in JSON. Classes without personal fields get
None, and cost nothing more. A marking that cannot work is refused with ``InvalidEvent``
naming the field. :mod:`facta.personal.sealing` seals and opens the fields found here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import typing
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import msgspec

from facta.errors import InvalidEvent
from facta.event_classes import is_pydantic_model
from facta.personal.markers import STREAM, PersonalMarker, Subject

__all__ = ["FieldInfo", "PersonalField", "PersonalFields", "fields_of", "personal_fields"]


class PersonalField(NamedTuple):
    """One personal field: its attribute name, its name in JSON, and the attribute holding its
    subject (None: the event's stream is the subject)."""

    name: str
    key: str
    subject: str | None


class FieldInfo(NamedTuple):
    """Any field of an event class: its attribute name, its JSON name, its annotation, and
    whether it is required (has no default)."""

    name: str
    key: str
    type: Any
    required: bool


class PersonalFields:
    """The personal fields of one class, and how to seal them."""

    def __init__(self, cls: type, fields: tuple[PersonalField, ...], every: tuple[FieldInfo, ...]):
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
    every = fields_of(cls)
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


def fields_of(cls: object) -> tuple[FieldInfo, ...] | None:
    """Every field of an event class (name, JSON name, annotation, required); None for a
    class of another kind."""
    if not isinstance(cls, type):
        return None
    if issubclass(cls, msgspec.Struct):
        hints = _hints(cls)
        return tuple(
            FieldInfo(f.name, f.encode_name, hints.get(f.name, f.type), f.required)
            for f in msgspec.structs.fields(cls)
        )
    if dataclasses.is_dataclass(cls):
        hints = _hints(cls)
        return tuple(
            FieldInfo(
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
            FieldInfo(
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


def _refuse_nested(cls: type, every: Iterable[FieldInfo], personal: set[str]) -> None:
    """``InvalidEvent`` when a class nested in a field (not itself personal) has personal
    fields: only an event's own fields are sealed, and a nested marking would be ignored."""
    seen: set[type] = {cls}
    for field in every:
        if field.name in personal:
            continue
        for inner in _classes_in(field.type, seen):
            try:
                nested = fields_of(inner) or ()
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
                todo.extend(inner.type for inner in fields_of(item) or ())
        todo.extend(typing.get_args(item))


def _fields_of_kind(cls: type) -> bool:
    return (
        issubclass(cls, msgspec.Struct) or dataclasses.is_dataclass(cls) or is_pydantic_model(cls)
    )
