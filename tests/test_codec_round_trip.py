"""An appended event reads back equal to what was appended, or the append is refused.

Every case appends to ``memory://`` and reads back: the codec is the same for every backend.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import facta
from facta import Codec, EventRegistry, InvalidEvent, Metadata, NewEvent, Upcasters


class Level(enum.IntEnum):
    LOW = 1


class Colour(enum.StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Point:
    x: int
    y: int


class LooseStruct(msgspec.Struct, frozen=True):
    """Fields whose JSON form can come back as something else."""

    anything: Any = None
    maybe: float | None = None
    items: list[Any] = []
    mapping: dict[str, Any] = {}
    text: str = ""
    blob: bytes = b""
    ratio: float = 0.0
    count: int = 0
    numbers: list[int] = []
    pair: tuple[int, ...] = ()
    when: datetime | None = None
    day: date | None = None
    tags: set[str] = set()
    price: Decimal = Decimal(0)
    point: Point | None = None


@dataclass(frozen=True)
class LooseData:
    """The same fields on a dataclass."""

    anything: Any = None
    maybe: float | None = None
    items: list[Any] = field(default_factory=list)
    mapping: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    blob: bytes = b""
    ratio: float = 0.0
    count: int = 0
    numbers: list[int] = field(default_factory=list)
    pair: tuple[int, ...] = ()
    when: datetime | None = None
    day: date | None = None
    tags: set[str] = field(default_factory=set)
    price: Decimal = Decimal(0)
    point: Point | None = None


class Wider(msgspec.Struct, frozen=True):
    """More annotations the fast check models."""

    flag: bool = False
    choice: Literal["a", 1, None] = None
    level: Level = Level.LOW
    colour: Colour = Colour.RED
    couple: tuple[int, str] = (0, "")
    frozen: frozenset[int] = frozenset()
    clock: time | None = None
    span: timedelta = timedelta(0)
    by_int: dict[int, str] = {}
    by_uuid: dict[uuid.UUID, int] = {}
    ident: uuid.UUID | None = None
    either: int | str = 0
    points: list[Point] = []
    nested: dict[str, list[float]] = {}
    buffer: bytearray = bytearray()


class Constrained(msgspec.Struct, frozen=True):
    """Constraints are the decoder's to check, beside the rule."""

    count: Annotated[int, msgspec.Meta(ge=0)] = 0
    text: Annotated[str, msgspec.Meta(max_length=3)] = ""
    items: Annotated[list[Any], msgspec.Meta(max_length=2)] = []
    ratio: float = 0.0


REGISTRY = EventRegistry()
REGISTRY.register(LooseStruct, "LooseStruct")
REGISTRY.register(LooseData, "LooseData")
REGISTRY.register(Constrained, "Constrained")
REGISTRY.register(Wider, "Wider")
LOOSE = [LooseStruct, LooseData]
ODD_OFFSET = timezone(timedelta(minutes=-16, seconds=-8))  # a zone's old local mean time


@pytest.fixture
def store() -> Iterator[facta.EventStore]:
    with facta.connect("memory://", codec=Codec(REGISTRY, Upcasters())) as opened:
        yield opened


def read_back(store: facta.EventStore, event: object, metadata: Metadata | None = None) -> Any:
    """Append one event (with metadata) to a fresh stream and read it back."""
    stream = f"s-{uuid.uuid4()}"
    item = event if metadata is None else NewEvent(event, metadata=metadata)
    store.append(stream, [item], facta.ANY)
    (recorded,) = store.read_stream(stream)
    return recorded


LOSSY = {
    "nan-in-any": ("anything", math.nan, r"field anything is nan \(float\), which reads back "),
    "infinity-in-any": ("anything", math.inf, r"is inf \(float\), which reads back as None"),
    "nan-in-optional-float": ("maybe", math.nan, r"field maybe is nan .* have no JSON form"),
    "minus-infinity-in-optional-float": ("maybe", -math.inf, "field maybe is -inf"),
    "nan-in-list-of-any": ("items", [1.0, math.nan], r"field items\[1\] is nan"),
    "infinity-in-dict-of-any": ("mapping", {"x": math.inf}, r"field mapping\['x'\] is inf"),
    "bytes-in-str": ("text", b"hi", r"field text is b'hi' \(bytes\), which reads back as 'aGk='"),
    "uuid-in-str": ("text", uuid.UUID(int=1), r"declare the type it holds \(UUID\)"),
    "base64-str-in-bytes": ("blob", "aGk=", r"field blob is 'aGk=' \(str\), .* b'hi' \(bytes\)"),
    "big-int-in-float": ("ratio", 2**64 + 1, "a float holds that int only approximately"),
    "int-past-2**53-in-float": ("ratio", 2**53 + 1, r"reads back as 9007199254740992\.0"),
    "tuple-in-any": ("anything", (1, 2), r"\(1, 2\) \(tuple\), which reads back as \[1, 2\]"),
    "tuple-in-list": ("numbers", (1, 2), r"field numbers is \(1, 2\) \(tuple\)"),
    "list-in-tuple": ("pair", [1, 2], r"field pair is \[1, 2\] \(list\)"),
    "set-in-list": ("numbers", {1}, r"field numbers is \{1\} \(set\)"),
    "set-in-any": ("anything", {1}, r"field anything is \{1\} \(set\)"),
    "tuple-in-list-of-any": ("items", [(1, 2)], r"field items\[0\] is \(1, 2\)"),
    "bytes-in-any": ("anything", b"hi", r"field anything is b'hi' \(bytes\)"),
    "datetime-in-any": ("anything", datetime(2026, 1, 2, tzinfo=UTC), r"\(datetime\), which .*str"),
    "decimal-in-any": ("anything", Decimal("1.5"), r"Decimal\('1.5'\) \(Decimal\), which .*str"),
    "dataclass-in-any": ("anything", Point(1, 2), r"reads back as \{'x': 1, 'y': 2\} \(dict\)"),
    "int-keys-in-dict-of-str": ("mapping", {1: "a"}, r"field mapping has key 1 \(int\), .* '1'"),
    "offset-with-seconds": (
        "when",
        datetime(1880, 1, 1, tzinfo=ODD_OFFSET),
        r"1880-01-01T00:00:00-00:16:08 .* as 1880-01-01T00:00:00-00:16 .*offsets to the minute",
    ),
    "decimal-nan": (
        "price",
        Decimal("NaN"),
        r"field price is Decimal\('NaN'\) .*NaN is not equal to itself",
    ),
    "datetime-in-date": ("day", datetime(2026, 1, 2), r"would not decode back into Loose.*date"),
}


@pytest.mark.parametrize("cls", LOOSE)
@pytest.mark.parametrize(("name", "value", "message"), LOSSY.values(), ids=LOSSY.keys())
def test_an_event_that_would_read_back_differently_is_refused_saying_where_and_why(
    store: facta.EventStore, cls: type, name: str, value: object, message: str
) -> None:
    with pytest.raises(InvalidEvent, match=message) as raised:
        store.append("s-1", [cls(**{name: value})], facta.ANY)
    assert str(raised.value).startswith(f"event '{cls.__name__}' for stream 's-1' would not ")
    assert str(raised.value).endswith("; nothing was written")
    assert list(store.read_all()) == []


LOSSY_USER = {
    "nan": (math.nan, r"user\['x'\] is nan \(float\), .* None .*no JSON form"),
    "infinity": (math.inf, r"user\['x'\] is inf"),
    "minus-infinity": (-math.inf, r"user\['x'\] is -inf"),
    "tuple": ((1, 2), r"user\['x'\] is \(1, 2\) \(tuple\), .*metadata holds JSON values"),
    "bytes": (b"hi", r"user\['x'\] is b'hi' \(bytes\), which reads back as 'aGk='"),
    "datetime": (datetime(2026, 1, 2, tzinfo=UTC), r"user\['x'\] is 2026-01-02T00:00:00\+00:00"),
    "nested-nan": ({"a": [math.nan]}, r"user\['x'\]\['a'\]\[0\] is nan"),
    "int-key": ({1: "a"}, r"user\['x'\] has key 1 \(int\), which reads back as '1' \(str\)"),
}


@pytest.mark.parametrize(("value", "message"), LOSSY_USER.values(), ids=LOSSY_USER.keys())
def test_metadata_that_would_read_back_differently_is_refused_saying_where_and_why(
    store: facta.EventStore, value: object, message: str
) -> None:
    event = NewEvent(LooseStruct(), metadata=Metadata(user={"x": value}))
    with pytest.raises(
        InvalidEvent, match=r"^metadata of event '\w+' for stream 's-1' would not .*" + message
    ):
        store.append("s-1", [event], facta.ANY)
    assert list(store.read_all()) == []


def test_metadata_that_is_not_a_metadata_object_is_refused(store: facta.EventStore) -> None:
    not_metadata: Any = {"user": {"x": 1}}
    with pytest.raises(
        InvalidEvent, match=r"metadata of event .* for stream .* is a dict, not a facta"
    ):
        store.append("s-1", [NewEvent(LooseStruct(), metadata=not_metadata)], facta.ANY)


class Paris(tzinfo):
    """A zone that is not a fixed offset (as a ZoneInfo), without needing tzdata."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=2)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def tzname(self, dt: datetime | None) -> str:
        return "CEST"


# Each reads back equal (==) to what was written, if not always as the same type.
ACCEPTED = {
    "int-in-float": ("ratio", 3),  # reads back as 3.0
    "int-enum-in-int": ("count", Level.LOW),  # as 1
    "str-enum-in-str": ("text", Colour.RED),  # as "red"
    "naive-datetime": ("when", datetime(2026, 1, 2, 3, 4, 5, 6)),
    "whole-minute-offset": ("when", datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=-3.5)))),
    "zone": ("when", datetime(2026, 7, 2, 12, tzinfo=Paris())),  # as +02:00: the same instant
    "frozenset-in-set": ("tags", frozenset({"a"})),  # as {"a"}
    "bytearray-in-bytes": ("blob", bytearray(b"x")),  # as b"x"
    "big-int-in-any": ("anything", 2**100),
    "big-int-in-int": ("count", -(2**100)),
    "negative-zero": ("ratio", -0.0),
    "decimal-infinity": ("price", Decimal("-Infinity")),
    "json-in-any": ("anything", {"a": [1, 2.5, None, True, "x", {"b": []}]}),
    "int-in-optional-float": ("maybe", 2**53),  # as 9007199254740992.0, exactly
}


@pytest.mark.parametrize("cls", LOOSE)
@pytest.mark.parametrize(("name", "value"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_value_that_reads_back_equal_is_accepted(
    store: facta.EventStore, cls: type, name: str, value: object
) -> None:
    event = cls(**{name: value})
    recorded = read_back(store, event)
    assert type(recorded.data) is cls
    assert recorded.data == event


# -- properties ------------------------------------------------------------------------------

OFFSETS = [None, UTC, ODD_OFFSET, timezone(timedelta(hours=5, minutes=30)), Paris()]
hashables = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**53 - 2, max_value=2**70)
    | st.floats()
    | st.text()
    | st.binary(max_size=8)
    | st.datetimes(timezones=st.sampled_from(OFFSETS))
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.uuids()
    | st.decimals(allow_nan=False)
    | st.just(Decimal("NaN"))  # a signalling NaN cannot be hashed: it is in anything below
    | st.sampled_from(Level)
    | st.sampled_from(Colour)
    | st.builds(Point, st.integers(), st.integers())
    | st.sampled_from(["a", 1])
)
anything = st.recursive(
    hashables | st.just(Decimal("sNaN")) | st.binary(max_size=3).map(bytearray),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3) | st.integers() | st.uuids(), inner, max_size=3)
        | st.frozensets(hashables, max_size=3)
        | st.sets(hashables, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [field.name for field in dataclasses.fields(LooseData)]


def refused_or_equal(event: object, metadata: Metadata | None = None) -> None:
    """The property: the append is refused, or the event and metadata read back equal."""
    with facta.connect("memory://", codec=Codec(REGISTRY, Upcasters())) as store:
        try:
            recorded = read_back(store, event, metadata)
        except InvalidEvent:
            assert list(store.read_all()) == []
            return
    assert type(recorded.data) is type(event)
    assert recorded.data == event
    assert recorded.metadata == (metadata or Metadata())


@given(st.sampled_from(LOOSE), st.sampled_from(FIELDS), anything)
def test_any_value_in_any_field_is_refused_or_reads_back_equal(
    cls: type, name: str, value: object
) -> None:
    refused_or_equal(cls(**{name: value}))


@given(st.sampled_from([Wider, Constrained]), st.data())
def test_any_value_in_a_field_of_another_kind_is_refused_or_reads_back_equal(
    cls: type[msgspec.Struct], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(cls.__struct_fields__))
    refused_or_equal(cls(**{name: data.draw(anything)}))


@given(st.dictionaries(st.text(max_size=3), anything, max_size=3))
def test_any_metadata_is_refused_or_reads_back_equal(user: dict[str, Any]) -> None:
    refused_or_equal(LooseStruct(), Metadata(correlation_id="c", user=user))


finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
well_typed = {
    "anything": json_values,
    "maybe": st.none() | finite,
    "items": st.lists(json_values, max_size=3),
    "mapping": st.dictionaries(st.text(), json_values, max_size=3),
    "text": st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    "blob": st.binary(),
    "ratio": finite,
    "count": st.integers(),
    "numbers": st.lists(st.integers()),
    "pair": st.lists(st.integers(), max_size=3).map(tuple),
    "when": st.none() | st.datetimes(timezones=st.sampled_from(OFFSETS[:2] + OFFSETS[3:])),
    "day": st.none() | st.dates(),
    "tags": st.sets(st.text()),
    "price": st.decimals(allow_nan=False),
    "point": st.none() | st.builds(Point, st.integers(), st.integers()),
}


@given(
    st.sampled_from(LOOSE),
    st.fixed_dictionaries(well_typed),
    st.dictionaries(st.text(), json_values, max_size=3),
)
def test_values_of_the_declared_types_always_read_back_equal(
    cls: type, fields: dict[str, Any], user: dict[str, Any]
) -> None:
    event, metadata = cls(**fields), Metadata(causation_id="x", user=user)
    with facta.connect("memory://", codec=Codec(REGISTRY, Upcasters())) as store:
        recorded = read_back(store, event, metadata)
    assert (recorded.data, recorded.metadata) == (event, metadata)
