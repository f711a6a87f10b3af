"""The codec: msgspec JSON, typed decoding, the zlib stage, size limits, clear errors."""

from __future__ import annotations

import math
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from facta import (
    Codec,
    DecodeError,
    EventRegistry,
    EventTooLarge,
    InvalidEvent,
    Metadata,
    UnknownEventType,
    Upcasters,
)
from facta.codec import PLAIN, ZLIB


class Sample(msgspec.Struct, frozen=True):
    text: str
    number: int
    ratio: float
    flag: bool
    items: list[int]
    mapping: dict[str, str]
    maybe: str | None
    when: datetime
    ident: uuid.UUID


@dataclass(frozen=True)
class Note:
    text: str
    score: float = 0.0


REGISTRY = EventRegistry()
REGISTRY.register(Sample, "Sample", 2)
REGISTRY.register(Note, "Note")

# Whole-minute UTC offsets: RFC 3339 (so JSON) has no seconds in offsets, so an offset such
# as a zone's 19th-century local mean time (-00:16:08) comes back rounded to the minute.
OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
samples = st.builds(
    Sample,
    text=st.text(),
    number=st.integers(min_value=-(2**100), max_value=2**100),
    ratio=st.floats(allow_nan=False, allow_infinity=False),
    flag=st.booleans(),
    items=st.lists(st.integers(min_value=-(2**63), max_value=2**64 - 1)),
    mapping=st.dictionaries(st.text(), st.text()),
    maybe=st.none() | st.text(),
    when=st.datetimes(timezones=st.sampled_from(OFFSETS)),
    ident=st.uuids(),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
metadata = st.builds(
    Metadata,
    correlation_id=st.none() | st.text(),
    causation_id=st.none() | st.text(),
    user=st.dictionaries(st.text(), json_values, max_size=5),
)


def codec(**options: Any) -> Codec:
    return Codec(REGISTRY, Upcasters(), **options)


def round_trip(the_codec: Codec, event: object) -> object:
    name, version, encoding, data = the_codec.encode("s-1", event)
    return the_codec.decode(name, version, encoding, data)


@given(samples, st.sampled_from([None, 0, 64]))
def test_events_round_trip_through_encode_and_decode(
    sample: Sample, compress_above: int | None
) -> None:
    assert round_trip(codec(compress_above=compress_above), sample) == sample


@given(st.text(), st.floats(allow_nan=False, allow_infinity=False))
def test_dataclass_events_round_trip(text: str, score: float) -> None:
    assert round_trip(codec(), Note(text, score)) == Note(text, score)


@given(metadata)
def test_metadata_round_trips(value: Metadata) -> None:
    the_codec = codec()
    assert the_codec.decode_metadata(the_codec.encode_metadata("s-1", value)) == value


@given(st.text(), st.integers(min_value=0, max_value=200))
def test_zlib_applies_exactly_to_data_over_the_threshold(text: str, threshold: int) -> None:
    plain = codec().encode("s-1", Note(text))[3]
    _, _, encoding, data = codec(compress_above=threshold).encode("s-1", Note(text))
    if len(plain) > threshold:
        assert (encoding, zlib.decompress(data)) == (ZLIB, plain)
    else:
        assert (encoding, data) == (PLAIN, plain)


def test_encode_gives_the_type_name_schema_version_and_json_fields() -> None:
    assert codec().encode("s-1", Note("hi")) == ("Note", 1, PLAIN, b'{"text":"hi","score":0.0}')


def test_an_event_at_the_size_limit_is_accepted() -> None:
    size = len(codec().encode("s-1", Note("x" * 50))[3])
    assert codec(max_event_size=size).encode("s-1", Note("x" * 50))[0] == "Note"


def test_an_event_over_the_size_limit_raises_event_too_large_with_the_details() -> None:
    size = len(codec().encode("s-1", Note("x" * 50))[3])
    with pytest.raises(EventTooLarge) as raised:
        codec(max_event_size=size - 1, compress_above=0).encode("s-1", Note("x" * 50))
    error = raised.value
    assert (error.stream_id, error.type_name, error.size, error.limit) == (
        "s-1",
        "Note",
        size,
        size - 1,
    )


def test_an_unregistered_event_raises_invalid_event_naming_stream_and_class() -> None:
    with pytest.raises(InvalidEvent, match=r"stream 's-1': .*Unregistered is not a registered"):
        codec().encode("s-1", Unregistered())


@dataclass(frozen=True)
class Unregistered:
    pass


@pytest.mark.parametrize(
    "event",
    [
        Note(object()),  # type: ignore[arg-type]
        Note("\ud800"),
        Note("ok", math.nan),
        Note("ok", -math.inf),
        Note(5),  # type: ignore[arg-type]
    ],
    ids=["object", "lone-surrogate", "nan", "infinity", "wrong-type"],
)
def test_a_value_that_would_not_read_back_raises_invalid_event(event: Note) -> None:
    with pytest.raises(InvalidEvent, match=r"event 'Note' for stream 's-1'"):
        codec().encode("s-1", event)


def test_metadata_that_cannot_be_encoded_raises_invalid_event_naming_the_stream() -> None:
    with pytest.raises(InvalidEvent, match="metadata for stream 's-1'"):
        codec().encode_metadata("s-1", Metadata(user={"x": object()}))


def test_empty_metadata_is_stored_as_an_empty_object() -> None:
    the_codec = codec()
    assert the_codec.encode_metadata("s-1", Metadata()) == b"{}"
    assert the_codec.decode_metadata(b"{}") == Metadata()


@pytest.mark.parametrize("stored", [b"not json", b"[]", b'{"correlation_id": 5}'])
def test_stored_metadata_that_does_not_decode_raises_decode_error(stored: bytes) -> None:
    with pytest.raises(DecodeError, match="metadata"):
        codec().decode_metadata(stored)


def test_decoding_an_unknown_type_raises_unknown_event_type_naming_it() -> None:
    with pytest.raises(UnknownEventType, match=r"^at x: .*'Gone'"):
        codec().decode("Gone", 1, PLAIN, b"{}", where="at x: ")


def test_decoding_corrupt_compressed_data_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="corrupt"):
        codec().decode("Note", 1, ZLIB, b"not zlib")


def test_decoding_an_unknown_encoding_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="unknown encoding 7"):
        codec().decode("Note", 1, 7, b"{}")


@pytest.mark.parametrize("stored", [b'{"text": 5}', b"{}", b"nonsense", b'["hi"]'])
def test_decoding_data_of_the_wrong_shape_raises_decode_error_naming_the_class(
    stored: bytes,
) -> None:
    with pytest.raises(DecodeError, match=r"^at x: type 'Note' .*Note"):
        codec().decode("Note", 1, PLAIN, stored, where="at x: ")


def reloaded_class() -> type:
    """A new class object under the same module and qualified name (as a module reload makes)."""

    @dataclass(frozen=True)
    class Reloaded:
        text: str

    return Reloaded


def test_a_class_registered_again_after_a_decode_is_used_by_the_next_decode() -> None:
    registry = EventRegistry()
    the_codec = Codec(registry, Upcasters())
    old, new = reloaded_class(), reloaded_class()
    registry.register(old, "Reloaded")
    assert type(the_codec.decode("Reloaded", 1, PLAIN, b'{"text":"a"}')) is old
    registry.register(new, "Reloaded")
    assert type(the_codec.decode("Reloaded", 1, PLAIN, b'{"text":"a"}')) is new


def test_an_older_schema_version_is_upcast_before_decoding() -> None:
    upcasters = Upcasters()
    upcasters.register("Sample", 1, lambda data: {**data, "ident": str(uuid.UUID(int=0))})
    stored = msgspec.json.encode(
        {
            "text": "t",
            "number": 1,
            "ratio": 0.5,
            "flag": True,
            "items": [],
            "mapping": {},
            "maybe": None,
            "when": "2026-01-02T03:04:05Z",
        }
    )
    decoded = Codec(REGISTRY, upcasters).decode("Sample", 1, PLAIN, stored)
    assert isinstance(decoded, Sample)
    assert decoded.ident == uuid.UUID(int=0)


@dataclass
class Doubling:
    """Its __post_init__ changes a field, so it runs again on decoding: reads back doubled."""

    n: int

    def __post_init__(self) -> None:
        self.n *= 2


@dataclass(frozen=True, eq=False)
class Unequal:
    """No __eq__ of its own: two instances are never equal, but their fields can be."""

    value: Any


class Bounded(msgspec.Struct, frozen=True):
    n: Annotated[int, msgspec.Meta(ge=0)]
    ratio: float = 0.0


class Tree(msgspec.Struct, frozen=True):
    weight: float
    children: list[Tree] = []


@dataclass
class Unset:
    n: int
    later: int = field(init=False)


Keyword = msgspec.defstruct("Keyword", [("class", int)], frozen=True)
CHECKED = EventRegistry()
for cls in (Doubling, Unequal, Bounded, Tree, Unset, Keyword):
    CHECKED.register(cls, cls.__name__)


def checked_codec() -> Codec:
    return Codec(CHECKED, Upcasters())


def test_a_class_whose_post_init_changes_fields_is_compared_after_decoding() -> None:
    with pytest.raises(InvalidEvent, match=r"field n is 2 \(int\), which reads back as 4"):
        checked_codec().encode("s-1", Doubling(1))
    assert round_trip(checked_codec(), Doubling(0)) == Doubling(0)


def test_a_class_without_equality_is_compared_field_by_field() -> None:
    read = round_trip(checked_codec(), Unequal([1, "a"]))
    assert isinstance(read, Unequal)
    assert read.value == [1, "a"]
    with pytest.raises(InvalidEvent, match=r"field value\[0\] is nan"):
        checked_codec().encode("s-1", Unequal([math.nan]))


def test_a_class_with_a_constrained_field_is_checked_by_the_constraint_and_the_rule() -> None:
    assert round_trip(checked_codec(), Bounded(1, 0.5)) == Bounded(1, 0.5)
    with pytest.raises(InvalidEvent, match=r"would not decode back into Bounded: .*>= 0"):
        checked_codec().encode("s-1", Bounded(-1))
    with pytest.raises(InvalidEvent, match="field ratio is 9007199254740993 "):
        checked_codec().encode("s-1", Bounded(1, 2**53 + 1))


def test_a_class_that_contains_itself_is_checked_at_every_depth() -> None:
    tree = Tree(1.0, [Tree(2.0, [Tree(3.0)])])
    assert round_trip(checked_codec(), tree) == tree
    with pytest.raises(
        InvalidEvent, match=r"field children\[0\]\.children\[0\]\.weight is 9007199254740993 "
    ):
        checked_codec().encode("s-1", Tree(1.0, [Tree(2.0, [Tree(2**53 + 1)])]))


def test_a_field_never_set_is_refused_as_not_decoding() -> None:
    with pytest.raises(InvalidEvent, match=r"would not decode back into Unset: .*`later`"):
        checked_codec().encode("s-1", Unset(1))


def test_a_field_named_by_a_keyword_is_checked() -> None:
    assert round_trip(checked_codec(), Keyword(1)) == Keyword(1)
    with pytest.raises(InvalidEvent, match=r"Expected `int`, got `bool` - at `\$\.class`"):
        checked_codec().encode("s-1", Keyword(True))


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [10, 700])
def test_a_deeply_nested_value_that_encodes_is_checked(depth: int) -> None:
    read = round_trip(checked_codec(), Unequal(nested(depth)))
    assert isinstance(read, Unequal)
    assert read.value == nested(depth)


def test_a_value_nested_too_deeply_to_encode_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="cannot be encoded: maximum recursion depth"):
        checked_codec().encode("s-1", Unequal(nested(5000)))


def test_metadata_errors_name_the_event_type_when_the_caller_gives_it() -> None:
    with pytest.raises(InvalidEvent, match=r"^metadata of event 'Note' for stream 's-1' would not"):
        codec().encode_metadata("s-1", Metadata(user={"x": math.nan}), type_name="Note")
