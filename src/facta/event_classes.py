"""The kinds of class an event (or a snapshot state) may be, and how each becomes JSON and back.

Dataclasses and ``msgspec.Struct`` s are msgspec's own. A pydantic (v2) model is encoded as
its fields (``model_dump``), by msgspec, so it is stored as the same JSON as the equivalent
dataclass; it is decoded by pydantic (``model_validate_json``), so its validation runs, and
a payload that fails it raises msgspec's ``ValidationError`` as any other decoder does.

pydantic is never imported here: a class can only be a pydantic model if the application has
imported pydantic already, so facta works alike with or without it installed.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Protocol

import msgspec

from facta.personal.markers import Forgotten

__all__ = [
    "Decoder",
    "convert",
    "decode_hook",
    "encode_hook",
    "is_event_class",
    "is_pydantic_model",
    "json_decoder",
]


class Decoder(Protocol):
    """What decodes stored JSON into one class (``msgspec.json.Decoder`` is one)."""

    def decode(self, buf: bytes, /) -> Any: ...


def is_pydantic_model(cls: object) -> bool:
    """Whether ``cls`` is a pydantic v2 model class (without importing pydantic)."""
    main = sys.modules.get("pydantic.main")
    base = getattr(main, "BaseModel", None)
    return (
        isinstance(cls, type)
        and isinstance(base, type)
        and hasattr(base, "model_validate_json")  # pydantic v1's BaseModel has no such method
        and issubclass(cls, base)
    )


def is_event_class(cls: object) -> bool:
    """Whether ``cls`` is a dataclass, a ``msgspec.Struct`` or a pydantic model class."""
    return isinstance(cls, type) and (
        dataclasses.is_dataclass(cls) or issubclass(cls, msgspec.Struct) or is_pydantic_model(cls)
    )


def encode_hook(value: Any) -> Any:
    """msgspec's hook for what it does not encode itself: a pydantic model, as its fields.

    ``round_trip`` dumps values (``Json[...]`` fields) in a form the model reads back;
    pydantic's warnings are off, as the codec's read-back check reports what would not.
    """
    if is_pydantic_model(type(value)):
        return value.model_dump(mode="python", by_alias=True, round_trip=True, warnings=False)
    if value is Forgotten:
        raise TypeError(
            "it holds facta.Forgotten (a forgotten subject's personal data), which is never stored again"
        )
    raise TypeError(f"Encoding objects of type {type(value).__qualname__} is unsupported")


def decode_hook(cls: type, value: Any) -> Any:
    """msgspec's hook for the types it does not decode itself: a pydantic model held by a
    dataclass or Struct, validated from JSON as a top-level model is (msgspec adds where the
    model is to the error: ``... (at .currency) - at `$.money```)."""
    if is_pydantic_model(cls):
        try:
            return cls.model_validate_json(msgspec.json.encode(value))  # type: ignore[attr-defined]
        except ValueError as e:
            raise ValueError(_explained(e, "(at {})")) from e
    raise TypeError(f"Expected `{cls.__qualname__}`, got `{type(value).__name__}`")


def json_decoder(cls: type) -> Decoder:
    """The decoder of stored JSON into ``cls``, an event or snapshot state class."""
    if is_pydantic_model(cls):
        return _ModelDecoder(cls)
    return msgspec.json.Decoder(cls, dec_hook=decode_hook)


def convert(fields: dict[str, Any], cls: type) -> Any:
    """An instance of ``cls`` from the fields of upcasted JSON, by the rules that decoding the
    JSON would follow; ``msgspec.ValidationError`` if they do not fit."""
    if is_pydantic_model(cls):
        return _ModelDecoder(cls).decode(msgspec.json.encode(fields))
    return msgspec.convert(fields, cls, dec_hook=decode_hook)


class _ModelDecoder:
    """Decodes JSON into a pydantic model, raising msgspec's ``ValidationError`` on failure."""

    __slots__ = ("_validate",)

    def __init__(self, cls: type) -> None:
        self._validate = cls.model_validate_json  # type: ignore[attr-defined]

    def decode(self, buf: bytes, /) -> Any:
        try:
            return self._validate(buf)
        except ValueError as e:  # pydantic's ValidationError; a validator's other errors pass
            raise msgspec.ValidationError(_explained(e, "- at `${}`")) from e


def _explained(error: ValueError, at: str) -> str:
    """pydantic's errors on one line, each placed as ``at`` says (msgspec's form:
    ``message - at `$.field```), without the values."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    found = []
    for item in errors(include_url=False):
        place = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in item["loc"])
        found.append(f"{item['msg']} {at.format(place)}" if place else item["msg"])
    return "; ".join(found)
