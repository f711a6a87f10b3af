"""Properties of upcaster chains, over any chain length, start version, rename and gap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import facta
from facta import Codec, EventRegistry, UpcastError, Upcasters
from facta.codec import PLAIN

lengths = st.integers(min_value=1, max_value=12)


def step(name: str, version: int) -> Any:
    """A step that records itself in the data's trail."""
    return lambda data: {**data, "trail": [*data["trail"], f"{name}{version}"]}


def chain(name: str, length: int, skip: int | None = None) -> Upcasters:
    """Steps name v1 -> v2 -> ... -> v(length + 1), without the one from ``skip``."""
    casts = Upcasters()
    for version in range(1, length + 1):
        if version != skip:
            casts.register(name, version, step(name, version))
    return casts


@given(st.data(), lengths)
def test_chain_runs_exactly_the_steps_from_the_stored_version_to_the_current_one(
    data: st.DataObject, length: int
) -> None:
    start = data.draw(st.integers(min_value=1, max_value=length + 1))

    result = chain("T", length).upcast("T", start, {"trail": []}, {"T": length + 1}.get)

    assert result == ("T", length + 1, {"trail": [f"T{v}" for v in range(start, length + 1)]})


@given(st.data(), lengths)
def test_upcasting_in_two_legs_is_upcasting_in_one(data: st.DataObject, length: int) -> None:
    start = data.draw(st.integers(min_value=1, max_value=length + 1))
    middle = data.draw(st.integers(min_value=start, max_value=length + 1))
    casts = chain("T", length)

    _, _, first_leg = casts.upcast("T", start, {"trail": []}, {"T": middle}.get)
    at_once = casts.upcast("T", start, {"trail": []}, {"T": length + 1}.get)

    assert casts.upcast("T", middle, first_leg, {"T": length + 1}.get) == at_once


@given(st.data(), lengths)
def test_a_gap_fails_exactly_the_chains_that_must_cross_it_and_names_it(
    data: st.DataObject, length: int
) -> None:
    gap = data.draw(st.integers(min_value=1, max_value=length))
    start = data.draw(st.integers(min_value=1, max_value=length + 1))
    casts = chain("T", length, skip=gap)

    if start > gap:
        assert casts.upcast("T", start, {"trail": []}, {"T": length + 1}.get)[1] == length + 1
    else:
        with pytest.raises(UpcastError) as raised:
            casts.upcast("T", start, {"trail": []}, {"T": length + 1}.get)
        assert f"type 'T' schema version {start}: " in str(raised.value)
        assert f"no upcaster from 'T' version {gap} " in str(raised.value)


@given(st.data(), lengths, lengths)
def test_chain_through_a_rename_ends_at_the_new_type_with_every_step_run(
    data: st.DataObject, before: int, after: int
) -> None:
    start = data.draw(st.integers(min_value=1, max_value=before))
    casts = Upcasters()
    for version in range(1, before):
        casts.register("Old", version, step("Old", version))
    casts.register("Old", before, step("Old", before), to_type="New")
    for version in range(1, after):
        casts.register("New", version, step("New", version))
    current = {"New": after}.get

    result = casts.upcast("Old", start, {"trail": []}, current)

    trail = [f"Old{v}" for v in range(start, before + 1)] + [f"New{v}" for v in range(1, after)]
    assert result == ("New", after, {"trail": trail})
    assert casts.destination("Old", start) == "New"


registry = EventRegistry()
casts = Upcasters()


@facta.event("test_upcasting_properties.Moved", version=3, registry=registry)
@dataclass(frozen=True)
class Moved:
    distance_mm: int
    unit: str


casts.register("test_upcasting_properties.Moved", 1, lambda d: {**d, "unit": "m"})
casts.register(
    "test_upcasting_properties.Moved",
    2,
    lambda d: {"distance_mm": d["distance"] * 1000, "unit": d["unit"]},
)


@given(st.integers(min_value=-(2**40), max_value=2**40), st.sampled_from([1, 2, 3]))
def test_codec_decodes_any_stored_version_into_the_current_class(
    distance: int, version: int
) -> None:
    stored = {
        1: {"distance": distance},
        2: {"distance": distance, "unit": "m"},
        3: {"distance_mm": distance * 1000, "unit": "m"},
    }[version]

    event = Codec(registry, casts).decode(
        "test_upcasting_properties.Moved", version, PLAIN, msgspec.json.encode(stored)
    )

    assert event == Moved(distance * 1000, "m")
