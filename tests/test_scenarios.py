"""facta.testing's scenarios: given events, when a command, then events or an error, for
aggregates; given events, then a check, for projections."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pydantic
import pytest

import facta
from facta import InvalidEvent, Metadata, NewEvent, RecordedEvent
from facta.projections import AsyncProjection, Projection, ProjectionError, handles
from facta.testing import projection_scenario, scenario


@facta.event("test.scenarios.Opened")
@dataclass(frozen=True)
class Opened:
    owner: str


@facta.event("test.scenarios.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


@facta.event("test.scenarios.Withdrawn")
@dataclass(frozen=True)
class Withdrawn:
    amount: int


@facta.event("test.scenarios.Closed")
class Closed(pydantic.BaseModel, frozen=True):
    reason: str


@dataclass(frozen=True)
class Unregistered:
    note: str


class InsufficientFunds(Exception):
    pass


class Account(facta.Aggregate):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.owner = ""
        self.balance = 0
        self.closed = False

    def open(self, owner: str) -> None:
        self.record(Opened(owner))

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount))

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise InsufficientFunds(f"cannot withdraw {amount}: the balance is {self.balance}")
        self.record(Withdrawn(amount))

    def close(self, reason: str) -> None:
        if self.balance:
            self.record(Withdrawn(self.balance))
        self.record(Closed(reason=reason))

    def scribble(self) -> None:
        self.record(Unregistered("no type name"))

    def apply(self, event: object) -> None:
        match event:
            case Opened(owner=owner):
                self.owner = owner
            case Deposited(amount=amount):
                self.balance += amount
            case Withdrawn(amount=amount):
                self.balance -= amount
            case Closed():
                self.closed = True


FUNDED = scenario(Account).given(Opened("ada"), Deposited(100))


def test_then_passes_when_the_expected_events_are_recorded_and_returns_the_aggregate() -> None:
    account = FUNDED.when(lambda a: a.withdraw(30)).then(Withdrawn(30))
    assert (account.owner, account.balance, account.version) == ("ada", 70, 2)
    assert account.pending_events == (Withdrawn(30),)


def test_a_scenario_with_no_history_starts_from_a_new_aggregate() -> None:
    account = scenario(Account, "acc-7").when(lambda a: a.open("bob")).then(Opened("bob"))
    assert (account.id, account.version, account.owner) == ("acc-7", 0, "bob")


def test_an_event_class_among_the_expected_events_stands_for_any_event_of_that_class() -> None:
    FUNDED.when(lambda a: a.close("moving")).then(Withdrawn, Closed(reason="moving"))


def test_then_with_no_events_expects_the_command_to_record_nothing() -> None:
    FUNDED.when(lambda a: None).then()
    with pytest.raises(AssertionError, match="1 recorded, 0 expected"):
        FUNDED.when(lambda a: a.deposit(1)).then()


def test_a_field_that_differs_is_named_with_both_values_and_both_lists_are_shown() -> None:
    with pytest.raises(AssertionError) as failure:
        FUNDED.when(lambda a: a.withdraw(30)).then(Withdrawn(40))
    assert str(failure.value) == (
        "Account 'scenario-1' recorded other events than expected: event 1 has amount 30, "
        "expected 40\n"
        "expected 1 event:\n"
        "  1. Withdrawn(amount=40)\n"
        "recorded 1 event:\n"
        "  1. Withdrawn(amount=30)"
    )


def test_an_event_of_another_class_than_expected_is_named() -> None:
    with pytest.raises(AssertionError, match="event 1 is a Deposited, expected a Withdrawn"):
        FUNDED.when(lambda a: a.deposit(5)).then(Withdrawn(5))
    with pytest.raises(AssertionError, match=r"event 1 is a Deposited, expected a Withdrawn\n"):
        FUNDED.when(lambda a: a.deposit(5)).then(Withdrawn)


def test_missing_or_extra_events_are_counted_and_listed() -> None:
    with pytest.raises(AssertionError) as failure:
        FUNDED.when(lambda a: a.close("moving")).then(Withdrawn(100))
    message = str(failure.value)
    assert "2 recorded, 1 expected" in message
    assert "recorded 2 events:\n  1. Withdrawn(amount=100)\n  2. Closed(reason='moving')" in message
    with pytest.raises(AssertionError, match=r"0 recorded, 1 expected\nexpected 1 event:\n"):
        FUNDED.when(lambda a: None).then(Deposited(1))


def test_then_raises_returns_the_error_the_command_raised() -> None:
    error = FUNDED.when(lambda a: a.withdraw(500)).then_raises(
        InsufficientFunds, match=r"the balance is 100$"
    )
    assert str(error) == "cannot withdraw 500: the balance is 100"


def test_then_raises_fails_when_the_command_raises_nothing_and_shows_what_it_recorded() -> None:
    with pytest.raises(
        AssertionError,
        match=re.escape(
            "Account 'scenario-1': the command raised nothing, where InsufficientFunds was "
            "expected\nrecorded 1 event:\n  1. Withdrawn(amount=50)"
        ),
    ):
        FUNDED.when(lambda a: a.withdraw(50)).then_raises(InsufficientFunds)


def test_then_raises_fails_when_the_message_does_not_match() -> None:
    with pytest.raises(
        AssertionError,
        match=re.escape(
            "raised InsufficientFunds: 'cannot withdraw 500: the balance is 100', which does "
            "not match 'overdraft'"
        ),
    ):
        FUNDED.when(lambda a: a.withdraw(500)).then_raises(InsufficientFunds, match="overdraft")


def test_another_error_than_expected_is_let_through_with_a_note() -> None:
    with pytest.raises(InsufficientFunds) as failure:
        FUNDED.when(lambda a: a.withdraw(500)).then_raises(KeyError)
    assert failure.value.__notes__ == [
        "the command on Account 'scenario-1' raised this, where KeyError was expected"
    ]


def test_a_command_that_raises_where_events_were_expected_is_let_through_with_a_note() -> None:
    with pytest.raises(InsufficientFunds) as failure:
        FUNDED.when(lambda a: a.withdraw(500)).then(Withdrawn(500))
    assert failure.value.__notes__ == [
        "Account 'scenario-1': the command raised, where events were expected"
    ]


def test_a_given_event_that_could_not_be_stored_is_refused_naming_it() -> None:
    with pytest.raises(InvalidEvent, match="Unregistered is not a registered event class") as e:
        scenario(Account).given(Unregistered("x")).when(lambda a: None).then()
    assert e.value.__notes__ == ["Account 'scenario-1': given event 1, Unregistered(note='x')"]


def test_a_recorded_event_that_could_not_be_stored_is_refused_naming_it() -> None:
    with pytest.raises(InvalidEvent) as e:
        FUNDED.when(lambda a: a.scribble()).then(Unregistered("no type name"))
    assert e.value.__notes__ == [
        "Account 'scenario-1': recorded event 1, Unregistered(note='no type name')"
    ]


def test_each_step_returns_a_new_scenario_so_one_history_starts_several() -> None:
    opened = scenario(Account).given(Opened("ada"))
    opened.given(Deposited(10)).when(lambda a: a.withdraw(10)).then(Withdrawn(10))
    opened.when(lambda a: a.withdraw(10)).then_raises(InsufficientFunds)
    assert opened.history == (Opened("ada"),)
    assert opened.command is None


def test_then_without_a_command_says_to_give_one() -> None:
    with pytest.raises(TypeError, match=r"call \.when\(command\) before \.then\(\)"):
        FUNDED.then()


def test_an_async_command_is_refused() -> None:
    async def withdraw(account: Account) -> None:
        account.withdraw(1)

    with pytest.raises(TypeError, match="the command is a coroutine function"):
        FUNDED.when(withdraw).then(Withdrawn(1))


# -- projections -----------------------------------------------------------------------------


class Balances(Projection[None]):
    name = "test-scenarios-balances"

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.correlations: list[str | None] = []

    @handles(Deposited)
    def deposited(self, event: RecordedEvent[Deposited], connection: None) -> None:
        self.balances[event.stream_id] = self.balances.get(event.stream_id, 0) + event.data.amount
        self.correlations.append(event.metadata.correlation_id)

    @handles(Withdrawn)
    def withdrawn(self, event: RecordedEvent[Withdrawn], connection: None) -> None:
        if event.data.amount > self.balances.get(event.stream_id, 0):
            raise InsufficientFunds(f"stream {event.stream_id} would go below zero")
        self.balances[event.stream_id] -= event.data.amount


class AsyncBalances(AsyncProjection[None]):
    name = "test-scenarios-async-balances"

    def __init__(self) -> None:
        self.total = 0

    @handles(Deposited)
    async def deposited(self, event: RecordedEvent[Deposited], connection: None) -> None:
        self.total += event.data.amount


def test_a_projection_reads_the_events_given_in_their_streams_and_is_checked() -> None:
    balances = (
        projection_scenario(Balances)
        .given(Deposited(100), Withdrawn(30), stream_id="acc-1")
        .given(Deposited(5), stream_id="acc-2")
        .then(lambda projection: projection.balances == {"acc-1": 70, "acc-2": 5})
    )
    assert balances.balances == {"acc-1": 70, "acc-2": 5}


def test_a_check_that_returns_false_fails_showing_the_projection_state() -> None:
    with pytest.raises(AssertionError) as failure:
        projection_scenario(Balances).given(Deposited(100)).then(
            lambda projection: projection.balances == {"scenario-1": 99}
        )
    assert str(failure.value) == (
        "the check returned False; Balances after 1 event: "
        "{'balances': {'scenario-1': 100}, 'correlations': [None]}"
    )


def test_a_check_that_asserts_fails_with_the_projection_state_as_a_note() -> None:
    def check(projection: Balances) -> None:
        assert projection.balances == {}

    with pytest.raises(AssertionError) as failure:
        projection_scenario(Balances).given(Deposited(1), Deposited(2)).then(check)
    assert failure.value.__notes__ == [
        "Balances after 2 events: {'balances': {'scenario-1': 3}, 'correlations': [None, None]}"
    ]


def test_events_given_with_metadata_reach_the_handlers() -> None:
    event = NewEvent(Deposited(1), metadata=Metadata(correlation_id="request-1"))
    balances = projection_scenario(Balances).given(event).then()
    assert balances.correlations == ["request-1"]


def test_a_projection_instance_is_used_as_it_is() -> None:
    mine = Balances()
    assert projection_scenario(mine).given(Deposited(3)).then() is mine
    assert mine.balances == {"scenario-1": 3}


def test_then_raises_returns_the_error_of_the_handler() -> None:
    error = (
        projection_scenario(Balances)
        .given(Deposited(10), Withdrawn(20))
        .then_raises(InsufficientFunds, match="would go below zero")
    )
    assert str(error) == "stream scenario-1 would go below zero"


def test_then_raises_matches_the_projection_error_that_names_the_event() -> None:
    error = (
        projection_scenario(Balances)
        .given(Withdrawn(20))
        .then_raises(ProjectionError, match="stopped at event 'test.scenarios.Withdrawn'")
    )
    assert error.version == 1


def test_then_raises_fails_when_no_handler_raised() -> None:
    with pytest.raises(
        AssertionError,
        match="the projection read 1 event without raising, where InsufficientFunds was expected",
    ):
        projection_scenario(Balances).given(Deposited(1)).then_raises(InsufficientFunds)


async def test_an_async_projection_runs_with_then_async() -> None:
    projection = (
        await projection_scenario(AsyncBalances)
        .given(Deposited(2), Deposited(3))
        .then_async(lambda projection: projection.total == 5)
    )
    assert projection.total == 5
    with pytest.raises(AssertionError, match="the check returned False; AsyncBalances after 1"):
        await (
            projection_scenario(AsyncBalances)
            .given(Deposited(2))
            .then_async(lambda projection: projection.total == 5)
        )


async def test_then_raises_async_returns_the_error_of_the_handler() -> None:
    error = await (
        projection_scenario(Balances).given(Withdrawn(1)).then_raises_async(InsufficientFunds)
    )
    assert "below zero" in str(error)


def test_then_on_an_async_projection_says_to_await_then_async() -> None:
    with pytest.raises(TypeError, match=r"use `await scenario\.then_async\(check\)`"):
        projection_scenario(AsyncBalances).given(Deposited(1)).then()


def test_a_scenario_refuses_what_is_not_an_aggregate_or_a_projection() -> None:
    with pytest.raises(TypeError, match=r"takes a facta\.Aggregate subclass"):
        scenario(Balances)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="takes a Projection or AsyncProjection"):
        projection_scenario(Account)  # type: ignore[type-var]
