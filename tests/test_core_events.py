"""The event registry, and the envelopes events travel in."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from facta import (
    Checkpoint,
    EventRegistry,
    InvalidEvent,
    Metadata,
    NewEvent,
    RecordedEvent,
    UnknownEventType,
    event,
)
from facta.events import EventType, default_registry


@dataclass(frozen=True)
class Opened:
    owner: str


class Closed(msgspec.Struct, frozen=True):
    reason: str


def same_named_class() -> type:
    """A fresh class object with the same module and qualified name each time (a reload)."""

    @dataclass(frozen=True)
    class Reloaded:
        value: int

    return Reloaded


def test_event_registers_a_class_under_its_type_name_and_returns_it() -> None:
    registry = EventRegistry()
    decorated = event("Opened", registry=registry)(Opened)
    assert decorated is Opened
    assert registry.type_of(Opened("ada")) == EventType("Opened", 1)
    assert registry.class_of("Opened") is Opened


def test_event_records_the_schema_version() -> None:
    registry = EventRegistry()
    event("Closed", version=3, registry=registry)(Closed)
    assert registry.get("Closed") == (Closed, 3)


def test_event_registers_in_the_default_registry_unless_told_otherwise() -> None:
    @event("test_core_events.Default")
    @dataclass(frozen=True)
    class Default:
        value: int

    assert default_registry.type_of(Default(1)) == EventType("test_core_events.Default", 1)


def test_a_private_registry_does_not_see_the_default_ones_types() -> None:
    registry = EventRegistry()
    assert registry.get("facta.testing.Happened") is None
    assert registry.names() == []


def test_a_type_name_taken_by_another_class_is_refused() -> None:
    registry = EventRegistry()
    registry.register(Opened, "Shared")
    with pytest.raises(InvalidEvent, match="'Shared' is already taken"):
        registry.register(Closed, "Shared")
    assert registry.class_of("Shared") is Opened


def test_registering_a_class_again_under_its_name_is_harmless() -> None:
    registry = EventRegistry()
    registry.register(Opened, "Opened")
    registry.register(Opened, "Opened")
    assert registry.names() == ["Opened"]
    assert registry.type_of(Opened("ada")).name == "Opened"


def test_a_reloaded_class_replaces_the_one_of_the_same_name() -> None:
    registry = EventRegistry()
    old, new = same_named_class(), same_named_class()
    registry.register(old, "Reloaded")
    registry.register(new, "Reloaded", version=2)
    assert registry.get("Reloaded") == (new, 2)
    with pytest.raises(InvalidEvent):
        registry.type_of(old(1))


def test_every_registration_moves_the_generation_on() -> None:
    registry = EventRegistry()
    before = registry.generation
    registry.register(Opened, "Opened")
    registry.register(Closed, "Closed")
    assert registry.generation == before + 2


@pytest.mark.parametrize("name", ["", "a\x00b", 5, None])
def test_a_type_name_must_be_a_non_empty_string_without_nul(name: Any) -> None:
    with pytest.raises(InvalidEvent, match="type name"):
        EventRegistry().register(Opened, name)


@pytest.mark.parametrize("version", [0, -1, True, "1", 1.0])
def test_a_schema_version_must_be_a_positive_int(version: Any) -> None:
    with pytest.raises(InvalidEvent, match="schema version"):
        EventRegistry().register(Opened, "Opened", version)


class Plain:
    pass


@pytest.mark.parametrize(
    "cls",
    [Plain, Opened("ada"), len, "Opened"],
    ids=["plain-class", "dataclass-instance", "function", "str"],
)
def test_only_dataclass_and_struct_classes_can_be_registered(cls: Any) -> None:
    with pytest.raises(InvalidEvent, match="'Named'"):
        EventRegistry().register(cls, "Named")


def test_type_of_an_unregistered_event_names_its_class() -> None:
    with pytest.raises(InvalidEvent, match="Plain is not a registered event class"):
        EventRegistry().type_of(Plain())


def test_class_of_an_unknown_type_name_names_it() -> None:
    with pytest.raises(UnknownEventType, match="'Nope'"):
        EventRegistry().class_of("Nope")


def test_get_of_an_unknown_type_name_is_none() -> None:
    assert EventRegistry().get("Nope") is None


def test_names_are_sorted() -> None:
    registry = EventRegistry()
    registry.register(Opened, "b.Opened")
    registry.register(Closed, "a.Closed")
    assert registry.names() == ["a.Closed", "b.Opened"]


def test_threads_registering_at_once_all_get_registered() -> None:
    registry = EventRegistry()
    classes = [msgspec.defstruct(f"Event{i}", [("n", int)]) for i in range(50)]
    threads = [
        threading.Thread(target=registry.register, args=(cls, f"Event{i}"))
        for i, cls in enumerate(classes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.names() == sorted(f"Event{i}" for i in range(50))


def test_a_new_event_gets_a_fresh_uuid7_and_empty_metadata() -> None:
    first, second = NewEvent(Opened("ada")), NewEvent(Opened("ada"))
    assert first.event_id != second.event_id
    assert isinstance(first.event_id, uuid.UUID)
    assert first.event_id.version == 7
    assert first.metadata == Metadata()


def test_metadata_defaults_to_nothing_and_does_not_share_its_user_dict() -> None:
    first, second = Metadata(), Metadata()
    assert (first.correlation_id, first.causation_id, first.user) == (None, None, {})
    assert first.user is not second.user


def test_the_start_of_the_log_is_checkpoint_zero() -> None:
    assert Checkpoint() == Checkpoint(0, 0)


def test_checkpoints_order_by_transaction_then_position() -> None:
    assert sorted([Checkpoint(2, 1), Checkpoint(1, 9), Checkpoint(1, 3)]) == [
        Checkpoint(1, 3),
        Checkpoint(1, 9),
        Checkpoint(2, 1),
    ]


def test_a_recorded_events_checkpoint_is_its_transaction_and_position() -> None:
    recorded = RecordedEvent(
        "s", 1, 42, uuid.uuid4(), "Opened", 1, Opened("ada"), Metadata(), datetime.now(UTC), 7
    )
    assert recorded.checkpoint == Checkpoint(7, 42)


def test_registering_one_class_under_a_second_name_is_refused() -> None:
    registry = EventRegistry()

    @dataclass(frozen=True)
    class Once:
        value: int

    registry.register(Once, "first.Name")
    with pytest.raises(InvalidEvent, match=r"already registered as 'first\.Name'"):
        registry.register(Once, "second.Name")
    assert registry.get("second.Name") is None
