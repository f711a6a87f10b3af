"""pydantic models as events and snapshot states: the same JSON as a dataclass, validated on
decoding, upcast as any event, and facta still works where pydantic is not installed."""

from __future__ import annotations

import math
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

import facta
from facta import (
    Codec,
    DecodeError,
    EventRegistry,
    InvalidEvent,
    UpcastError,
    Upcasters,
)
from facta.codec import PLAIN
from facta.readback import fast_check


class Currency(Enum):
    EUR = "EUR"
    USD = "USD"


class Money(pydantic.BaseModel, frozen=True):
    amount: Decimal
    currency: Currency


class Deposited(pydantic.BaseModel, frozen=True):
    account: str
    amount: int
    rate: float
    at: datetime
    on: date
    within: timedelta
    reference: uuid.UUID
    tags: list[str]
    limits: dict[str, int]
    kind: Literal["cash", "card"]
    fee: Money
    note: str | None = None
    extra: Any = None


@dataclass(frozen=True)
class MoneyData:
    amount: Decimal
    currency: Currency


@dataclass(frozen=True)
class DepositedData:
    """The dataclass equivalent of Deposited: the same fields, the same order."""

    account: str
    amount: int
    rate: float
    at: datetime
    on: date
    within: timedelta
    reference: uuid.UUID
    tags: list[str]
    limits: dict[str, int]
    kind: Literal["cash", "card"]
    fee: MoneyData
    note: str | None = None
    extra: Any = None


class Bounded(pydantic.BaseModel):
    amount: Annotated[int, pydantic.Field(ge=0)]


class Named(pydantic.BaseModel):
    first_name: str = pydantic.Field(alias="firstName")


class Lowered(pydantic.BaseModel):
    code: str

    @pydantic.field_validator("code")
    @classmethod
    def lower(cls, value: str) -> str:
        return value.lower()


class Blob(pydantic.BaseModel):
    data: bytes


class Base64Blob(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
    data: bytes


class Ratio(pydantic.BaseModel):
    value: float


@dataclass(frozen=True)
class Transfer:
    """A dataclass event holding a pydantic model."""

    to: str
    money: Money


class RenamedV2(pydantic.BaseModel):
    account: str
    amount: int
    currency: Currency


REGISTRY = EventRegistry()
for cls in (Deposited, Bounded, Named, Lowered, Blob, Base64Blob, Ratio, Transfer):
    REGISTRY.register(cls, cls.__name__)
REGISTRY.register(RenamedV2, "Renamed", 2)
DATACLASSES = EventRegistry()
DATACLASSES.register(DepositedData, "Deposited")

FIELDS: dict[str, Any] = {
    "account": "acc-1",
    "amount": 150,
    "rate": 0.25,
    "at": datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
    "on": date(2025, 3, 4),
    "within": timedelta(days=-1, seconds=30),
    "reference": uuid.UUID(int=7),
    "tags": ["web", "batch"],
    "limits": {"daily": 1000},
    "kind": "card",
    "note": None,
    "extra": {"nested": [1, 2.5, "x", None, True]},
}


def codec(upcasters: Upcasters | None = None) -> Codec:
    return Codec(REGISTRY, upcasters or Upcasters())


def deposited(**changes: Any) -> Deposited:
    fee = Money(amount=Decimal("1.50"), currency=Currency.EUR)
    return Deposited(**{**FIELDS, "fee": fee, **changes})


def round_trip(the_codec: Codec, event: object) -> Any:
    return the_codec.decode(*the_codec.encode("s-1", event))


def test_a_pydantic_event_is_stored_as_the_json_of_the_equivalent_dataclass() -> None:
    data = DepositedData(**FIELDS, fee=MoneyData(Decimal("1.50"), Currency.EUR))
    assert codec().encode("s-1", deposited()) == Codec(DATACLASSES).encode("s-1", data)


@given(
    account=st.text(),
    amount=st.integers(min_value=-(2**80), max_value=2**80),
    rate=st.floats(allow_nan=False, allow_infinity=False),
    at=st.datetimes(timezones=st.just(UTC)),
    tags=st.lists(st.text(), max_size=3),
)
def test_pydantic_and_dataclass_events_encode_alike_and_read_back_equal(
    account: str, amount: int, rate: float, at: datetime, tags: list[str]
) -> None:
    changes = {"account": account, "amount": amount, "rate": rate, "at": at, "tags": tags}
    event = deposited(**changes)
    data = DepositedData(**{**FIELDS, **changes}, fee=MoneyData(Decimal("1.50"), Currency.EUR))
    assert codec().encode("s-1", event) == Codec(DATACLASSES).encode("s-1", data)
    assert round_trip(codec(), event) == event


def test_a_pydantic_event_decodes_into_its_class() -> None:
    read = round_trip(codec(), deposited())
    assert type(read) is Deposited
    assert read == deposited()


def test_a_plain_model_gets_the_fast_read_back_check_of_an_equivalent_dataclass() -> None:
    check, constrained = fast_check(Deposited)
    assert check is not None
    assert not constrained
    assert check(deposited())
    assert not check(deposited(rate=math.nan))


def test_a_payload_failing_validation_raises_decode_error_naming_type_version_field() -> None:
    with pytest.raises(
        DecodeError,
        match=r"^at x: type 'Bounded' schema version 1: stored data does not decode into "
        r"Bounded: Input should be greater than or equal to 0 - at `\$\.amount`$",
    ):
        codec().decode("Bounded", 1, PLAIN, b'{"amount":-1}', where="at x: ")


@pytest.mark.parametrize("stored", [b'{"amount":"many"}', b"{}", b"nonsense", b"[1]"])
def test_a_payload_of_the_wrong_shape_raises_decode_error_naming_the_class(stored: bytes) -> None:
    with pytest.raises(DecodeError, match=r"^type 'Bounded' schema version 1: .* into Bounded: "):
        codec().decode("Bounded", 1, PLAIN, stored)


def test_an_event_that_breaks_its_constraints_is_refused_before_it_is_stored() -> None:
    with pytest.raises(
        InvalidEvent, match=r"would not decode back into Bounded: .*greater than or equal to 0"
    ):
        codec().encode("s-1", Bounded.model_construct(amount=-1))


def test_a_value_of_another_type_than_declared_is_refused() -> None:
    with pytest.raises(InvalidEvent, match=r"event 'Bounded' for stream 's-1' would not decode"):
        codec().encode("s-1", Bounded.model_construct(amount="12x"))


def test_nan_in_a_float_field_is_refused_as_it_reads_back_as_null() -> None:
    with pytest.raises(
        InvalidEvent, match=r"would not decode back into Ratio: .*valid number - at `\$\.value`"
    ):
        codec().encode("s-1", Ratio(value=math.nan))


def test_bytes_read_as_text_are_refused_with_the_model_config_that_fixes_them() -> None:
    with pytest.raises(InvalidEvent, match=r"field data is .*val_json_bytes='base64'"):
        codec().encode("s-1", Blob(data=b"\x00\xff"))
    assert round_trip(codec(), Base64Blob(data=b"\x00\xff")) == Base64Blob(data=b"\x00\xff")


def test_a_model_with_validators_is_compared_after_decoding() -> None:
    assert round_trip(codec(), Lowered(code="ABC")) == Lowered(code="abc")


def test_a_model_with_aliases_is_stored_by_alias_and_reads_back() -> None:
    event = Named(firstName="Ada")
    assert codec().encode("s-1", event)[3] == b'{"firstName":"Ada"}'
    assert round_trip(codec(), event) == event


def test_a_dataclass_event_holding_a_pydantic_model_round_trips_validated() -> None:
    event = Transfer("acc-2", Money(amount=Decimal("2"), currency=Currency.USD))
    assert round_trip(codec(), event) == event
    stored = b'{"to":"a","money":{"amount":"1","currency":"X"}}'
    with pytest.raises(DecodeError, match=r"'USD' \(at \.currency\) - at `\$\.money`$"):
        codec().decode("Transfer", 1, PLAIN, stored)


def test_an_older_schema_version_is_upcast_into_a_pydantic_event() -> None:
    upcasters = Upcasters()
    upcasters.register("Renamed", 1, lambda data: {**data, "currency": "EUR"})
    read = codec(upcasters).decode("Renamed", 1, PLAIN, b'{"account":"a","amount":3}')
    assert read == RenamedV2(account="a", amount=3, currency=Currency.EUR)


def test_upcasted_data_that_fails_validation_raises_upcast_error() -> None:
    upcasters = Upcasters()
    upcasters.register("Renamed", 1, lambda data: {**data, "currency": "GBP"})
    with pytest.raises(
        UpcastError, match=r"upcasted to 'Renamed' version 2, which does not decode: .*currency"
    ):
        codec(upcasters).decode("Renamed", 1, PLAIN, b'{"account":"a","amount":3}')


def test_a_class_that_is_not_a_record_is_refused_naming_the_kinds_taken() -> None:
    with pytest.raises(InvalidEvent, match=r"not a dataclass, msgspec\.Struct or pydantic model"):
        EventRegistry().register(dict, "Plain")


@facta.event("test.pydantic.Opened")
class Opened(pydantic.BaseModel, frozen=True):
    owner: str


@facta.event("test.pydantic.Added")
class Added(pydantic.BaseModel, frozen=True):
    amount: int


class TallyState(pydantic.BaseModel):
    owner: str
    total: int


class Tally(facta.Aggregate):
    snapshot_every = 3
    snapshot_type = TallyState

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.owner = ""
        self.total = 0

    def apply(self, event: object) -> None:
        match event:
            case Opened(owner=owner):
                self.owner = owner
            case Added(amount=amount):
                self.total += amount

    def snapshot_state(self) -> TallyState:
        return TallyState(owner=self.owner, total=self.total)

    def restore_state(self, state: TallyState) -> None:
        self.owner, self.total = state.owner, state.total


def test_pydantic_events_are_appended_read_and_loaded_from_a_pydantic_snapshot(
    tmp_path: Path,
) -> None:
    with facta.connect(f"sqlite:///{tmp_path / 'events.db'}") as store:
        tallies = facta.Repository(store, Tally)
        tally = Tally("tally-1")
        tally.record(Opened(owner="ada"))
        for amount in (1, 2, 3):
            tally.record(Added(amount=amount))
        tallies.save(tally)
        [snapshot] = store.read_snapshots("tally-1")
        assert msgspec.json.decode(snapshot.state) == {"owner": "ada", "total": 6}
        assert [event.data for event in store.read_stream("tally-1")][:2] == [
            Opened(owner="ada"),
            Added(amount=1),
        ]
        loaded = tallies.load("tally-1")
        assert (loaded.owner, loaded.total, loaded.version) == ("ada", 6, 4)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_importing_facta_does_not_import_pydantic() -> None:
    finished = run_python(
        "import sys, facta, facta.projections, facta.testing\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'"
    )
    assert finished.returncode == 0, finished.stderr


def test_facta_works_where_pydantic_cannot_be_imported() -> None:
    finished = run_python(
        "import sys\n"
        "sys.modules['pydantic'] = None  # as if it were not installed\n"
        "from dataclasses import dataclass\n"
        "import facta\n"
        "@facta.event('Noted')\n"
        "@dataclass(frozen=True)\n"
        "class Noted:\n"
        "    text: str\n"
        "with facta.connect('memory://') as store:\n"
        "    store.append('s-1', [Noted('hi')], facta.NO_STREAM)\n"
        "    assert [e.data for e in store.read_stream('s-1')] == [Noted('hi')]\n"
        "try:\n"
        "    facta.event('Plain')(dict)\n"
        "except facta.InvalidEvent as e:\n"
        "    print(e)\n"
    )
    assert finished.returncode == 0, finished.stderr
    assert "not a dataclass, msgspec.Struct or pydantic model class" in finished.stdout
