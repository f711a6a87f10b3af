"""The aggregate base class: record applies and queues; apply alone changes state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

import facta


@facta.event("tests.aggregate.Incremented")
@dataclass(frozen=True)
class Incremented:
    by: int


class Counter(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.total = 0

    def increment(self, by: int) -> None:
        if by <= 0:
            raise ValueError("increment by a positive amount")
        self.record(Incremented(by))

    def apply(self, event: object) -> None:
        match event:
            case Incremented(by=by):
                self.total += by


class Named(facta.Aggregate):
    type_name = "tests.Named"


class NamedChild(Named):
    pass


def test_a_new_aggregate_has_a_uuid7_id_version_zero_and_nothing_pending() -> None:
    counter = Counter()
    assert uuid.UUID(counter.id).version == 7
    assert (counter.version, counter.pending_events, counter.total) == (0, (), 0)


def test_an_aggregate_may_have_any_stream_id() -> None:
    assert Counter("order-2026-0042").id == "order-2026-0042"


@pytest.mark.parametrize("bad", ["", "a\x00b"])
def test_an_aggregate_refuses_an_id_no_store_can_hold(bad: str) -> None:
    with pytest.raises(facta.InvalidStreamId):
        Counter(bad)


def test_record_applies_the_event_and_queues_it() -> None:
    counter = Counter()
    counter.increment(2)
    counter.increment(3)
    assert counter.total == 5
    assert counter.pending_events == (Incremented(2), Incremented(3))
    assert counter.version == 0


def test_a_command_that_refuses_changes_nothing() -> None:
    counter = Counter()
    with pytest.raises(ValueError, match="positive"):
        counter.increment(0)
    assert (counter.total, counter.pending_events) == (0, ())


def test_pending_events_are_a_copy_that_later_records_leave_alone() -> None:
    counter = Counter()
    counter.increment(1)
    before = counter.pending_events
    counter.increment(2)
    assert before == (Incremented(1),)


def test_mark_saved_clears_pending_events_and_sets_the_version() -> None:
    counter = Counter()
    counter.increment(1)
    counter.increment(1)
    counter.mark_saved(2)
    assert (counter.version, counter.pending_events, counter.total) == (2, (), 2)


def test_an_aggregate_without_apply_cannot_record() -> None:
    with pytest.raises(NotImplementedError, match="Named must implement apply"):
        Named().record(Incremented(1))


def test_type_name_defaults_to_the_class_name() -> None:
    assert Counter.type_name == "Counter"


def test_type_name_can_be_set_and_is_not_inherited() -> None:
    assert (Named.type_name, NamedChild.type_name) == ("tests.Named", "NamedChild")


def test_repr_shows_id_version_and_pending_count() -> None:
    counter = Counter("c-1")
    counter.increment(1)
    assert repr(counter) == "<Counter c-1 v0, 1 pending>"
    counter.mark_saved(1)
    assert repr(counter) == "<Counter c-1 v1>"
