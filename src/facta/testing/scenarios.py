"""Given / when / then: tests of an application's aggregates and projections, pytest style.

An aggregate scenario starts from the events given (each encoded and decoded by the codec, as
a load would give them back), runs the command, and compares the events it recorded with the
ones expected, or the error it raised. A projection scenario appends the events given to a
memory store, runs the projection over them, and hands it to a check. A failed expectation is
an ``AssertionError`` that shows what was expected beside what happened.

>>> from dataclasses import dataclass
>>> import facta
>>> @facta.event("doc.scenarios.Deposited")
... @dataclass(frozen=True)
... class Deposited:
...     amount: int
>>> @facta.event("doc.scenarios.Withdrawn")
... @dataclass(frozen=True)
... class Withdrawn:
...     amount: int
>>> class Account(facta.Aggregate):
...     def __init__(self, id: str | None = None) -> None:
...         super().__init__(id)
...         self.balance = 0
...     def withdraw(self, amount: int) -> None:
...         if amount > self.balance:
...             raise ValueError(f"insufficient funds: the balance is {self.balance}")
...         self.record(Withdrawn(amount))
...     def apply(self, event: object) -> None:
...         match event:
...             case Deposited(amount=amount):
...                 self.balance += amount
...             case Withdrawn(amount=amount):
...                 self.balance -= amount
>>> funded = scenario(Account).given(Deposited(100))
>>> funded.when(lambda account: account.withdraw(30)).then(Withdrawn(30)).balance
70
>>> error = funded.when(lambda a: a.withdraw(500)).then_raises(ValueError, match="insufficient")
>>> funded.when(lambda account: account.withdraw(30)).then(Withdrawn(40))
Traceback (most recent call last):
  ...
AssertionError: Account 'scenario-1' recorded other events than expected: event 1 has amount 30, expected 40
expected 1 event:
  1. Withdrawn(amount=40)
recorded 1 event:
  1. Withdrawn(amount=30)
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from facta.aggregate import Aggregate
from facta.appending import ExpectedVersion
from facta.codec import Codec
from facta.connect import connect, connect_async
from facta.projections.errors import ProjectionError
from facta.projections.projection import Projection
from facta.projections.projection_async import AsyncProjection
from facta.projections.runner import ProjectionRunner
from facta.projections.runner_async import AsyncProjectionRunner
from facta.readback import difference

__all__ = ["AggregateScenario", "ProjectionScenario", "projection_scenario", "scenario"]

A = TypeVar("A", bound=Aggregate)
P = TypeVar("P", bound=Projection[Any] | AsyncProjection[Any])
E = TypeVar("E", bound=BaseException)

_ID = "scenario-1"  # the default stream id: fixed, so that failure messages are reproducible


def scenario(
    aggregate_type: type[A], id: str = _ID, *, codec: Codec | None = None
) -> AggregateScenario[A]:
    """A scenario for an aggregate of ``aggregate_type`` with stream id ``id``; ``codec`` (the
    default one: the default registry and upcasters) encodes and decodes the events."""
    if not (isinstance(aggregate_type, type) and issubclass(aggregate_type, Aggregate)):
        raise TypeError(f"scenario() takes a facta.Aggregate subclass, got {aggregate_type!r}")
    return AggregateScenario(aggregate_type, id, codec or Codec())


@dataclasses.dataclass(frozen=True)
class AggregateScenario(Generic[A]):
    """Given events, when a command, then events or an error. Each step returns a new
    scenario, so one with its history can be the start of several tests."""

    aggregate_type: type[A]
    id: str
    codec: Codec
    history: tuple[object, ...] = ()
    command: Callable[[A], object] | None = None

    def given(self, *events: object) -> AggregateScenario[A]:
        """The aggregate's history so far, oldest first (added to any given before)."""
        return dataclasses.replace(self, history=(*self.history, *events))

    def when(self, command: Callable[[A], object]) -> AggregateScenario[A]:
        """The command: a function of the aggregate, e.g. ``lambda a: a.withdraw(50)``."""
        return dataclasses.replace(self, command=command)

    def then(self, *expected: object) -> A:
        """Check that the command recorded exactly ``expected`` (none: nothing), in order; an
        event class there stands for any event of that class. Returns the aggregate."""
        aggregate, error = self._run()
        if error is not None:
            error.add_note(f"{self._name()}: the command raised, where events were expected")
            raise error
        recorded = aggregate.pending_events
        for index, event in enumerate(recorded, start=1):
            self._stored(f"recorded event {index}", event)
        mismatch = _mismatch(expected, recorded)
        if mismatch is not None:
            raise AssertionError(
                f"{self._name()} recorded other events than expected: {mismatch}\n"
                f"expected {_listed(expected)}\nrecorded {_listed(recorded)}"
            )
        return aggregate

    def then_raises(self, error: type[E], *, match: str | None = None) -> E:
        """Check that the command raised ``error`` (with ``match`` found in its message by
        ``re.search``, as ``pytest.raises``); returns it. Another exception is let through."""
        aggregate, raised = self._run()
        if raised is None:
            raise AssertionError(
                f"{self._name()}: the command raised nothing, where {error.__qualname__} was "
                f"expected\nrecorded {_listed(aggregate.pending_events)}"
            )
        return _expected(raised, error, match, f"the command on {self._name()}")

    def _run(self) -> tuple[A, Exception | None]:
        """The aggregate after the history and the command, and what the command raised."""
        if self.command is None:
            raise TypeError("the scenario has no command: call .when(command) before .then()")
        aggregate = self.aggregate_type(self.id)
        for index, event in enumerate(self.history, start=1):
            aggregate.apply(self._stored(f"given event {index}", event))
        aggregate.version = len(self.history)
        try:
            outcome = self.command(aggregate)
        except Exception as e:
            return aggregate, e
        if inspect.iscoroutine(outcome):
            outcome.close()  # nothing will await it
            raise TypeError(
                f"{self._name()}: the command is a coroutine function; aggregates decide "
                "synchronously: make it a plain function"
            )
        return aggregate, None

    def _stored(self, what: str, event: object) -> object:
        """The event as it would be read back from a store (``InvalidEvent`` if it would not
        be stored, with a note saying which one it is)."""
        try:
            return self.codec.decode(*self.codec.encode(self.id, event))
        except Exception as e:
            e.add_note(f"{self._name()}: {what}, {_shown(event)}")
            raise

    def _name(self) -> str:
        return f"{self.aggregate_type.__qualname__} {self.id!r}"


def projection_scenario(
    projection: type[P] | P, *, codec: Codec | None = None
) -> ProjectionScenario[P]:
    """A scenario for a projection: a class (a new instance is made, without arguments, for
    every run) or an instance (used as it is). It runs on a memory store, where handlers get
    ``None`` as their connection: the read model is the projection's own attributes."""
    if isinstance(projection, type):
        if not issubclass(projection, Projection | AsyncProjection):
            raise TypeError(
                f"projection_scenario() takes a Projection or AsyncProjection, got {projection!r}"
            )
        return ProjectionScenario(projection, codec)
    if not isinstance(projection, Projection | AsyncProjection):
        raise TypeError(
            f"projection_scenario() takes a Projection or AsyncProjection, got {projection!r}"
        )
    instance = projection
    return ProjectionScenario(lambda: instance, codec)


@dataclasses.dataclass(frozen=True)
class ProjectionScenario(Generic[P]):
    """Given events (in streams), then a check of the projection that read them."""

    make: Callable[[], P]
    codec: Codec | None
    history: tuple[tuple[str, tuple[object, ...]], ...] = ()

    def given(self, *events: object, stream_id: str = _ID) -> ProjectionScenario[P]:
        """Events appended to ``stream_id``, after those given before (``facta.NewEvent`` s
        too, for handlers that read metadata)."""
        return dataclasses.replace(self, history=(*self.history, (stream_id, events)))

    def then(self, check: Callable[[P], object] | None = None) -> P:
        """Run a sync projection over the events given, then ``check(projection)``: it may
        assert, or return False to fail. Returns the projection."""
        projection = self.make()
        if not isinstance(projection, Projection):
            raise TypeError(
                f"{type(projection).__qualname__} is an AsyncProjection: "
                "use `await scenario.then_async(check)`"
            )
        with connect("memory://", codec=self.codec) as store:
            for stream_id, events in self.history:
                store.append(stream_id, events, ExpectedVersion.ANY)
            with ProjectionRunner(store, projection) as runner:
                runner.catch_up()
        return _checked(projection, check, self._count())

    async def then_async(self, check: Callable[[P], object] | None = None) -> P:
        """:meth:`then` for an async projection (or a sync one, on an async store)."""
        projection = self.make()
        async with connect_async("memory://", codec=self.codec) as store:
            for stream_id, events in self.history:
                await store.append(stream_id, events, ExpectedVersion.ANY)
            async with AsyncProjectionRunner(store, projection) as runner:
                await runner.catch_up()
        return _checked(projection, check, self._count())

    def then_raises(self, error: type[E], *, match: str | None = None) -> E:
        """Check that a handler raised ``error`` (``match`` as for ``pytest.raises``) on one
        of the events given; returns it. ``ProjectionError`` matches too: it names the event."""
        try:
            self.then()
        except Exception as e:
            return _expected(e, error, match, "the projection")
        raise AssertionError(
            f"the projection read {self._count()} without raising, where "
            f"{error.__qualname__} was expected"
        )

    async def then_raises_async(self, error: type[E], *, match: str | None = None) -> E:
        """:meth:`then_raises` for an async projection."""
        try:
            await self.then_async()
        except Exception as e:
            return _expected(e, error, match, "the projection")
        raise AssertionError(
            f"the projection read {self._count()} without raising, where "
            f"{error.__qualname__} was expected"
        )

    def _count(self) -> str:
        count = sum(len(events) for _, events in self.history)
        return f"{count} event{'' if count == 1 else 's'}"


def _checked(projection: P, check: Callable[[P], object] | None, count: str) -> P:
    """Run the check on the projection; a failure shows the projection's state."""
    if check is None:
        return projection
    attributes = getattr(projection, "__dict__", {})
    state = f"{type(projection).__qualname__} after {count}: {_shown(attributes)}"
    try:
        outcome = check(projection)
    except AssertionError as e:
        e.add_note(state)
        raise
    if outcome is False:
        raise AssertionError(f"the check returned False; {state}")
    return projection


def _expected(raised: Exception, error: type[E], match: str | None, who: str) -> E:
    """``raised`` (or the handler error it carries) if it is an ``error`` that matches."""
    found = raised
    if isinstance(raised, ProjectionError) and not isinstance(raised, error):
        found = raised.cause  # type: ignore[assignment]  # a handler's error is an Exception
    if not isinstance(found, error):
        raised.add_note(f"{who} raised this, where {error.__qualname__} was expected")
        raise raised
    if match is not None and not re.search(match, str(found)):
        raise AssertionError(
            f"{who} raised {type(found).__qualname__}: {str(found)!r}, which does not match "
            f"{match!r}"
        )
    return found


def _mismatch(expected: Sequence[object], recorded: Sequence[object]) -> str | None:
    """What first differs between the events expected and recorded, or None."""
    for index, (wanted, event) in enumerate(zip(expected, recorded, strict=False), start=1):
        if isinstance(wanted, type):
            if not isinstance(event, wanted):
                found_class, wanted_class = type(event).__qualname__, wanted.__qualname__
                return f"event {index} is a {found_class}, expected a {wanted_class}"
            continue
        if type(event) is not type(wanted):
            return (
                f"event {index} is a {type(event).__qualname__}, expected a "
                f"{type(wanted).__qualname__}"
            )
        found = None if event == wanted else difference(wanted, event)  # by fields, if no __eq__
        if found is not None and found.path:
            field = found.path.removeprefix(".")
            return (
                f"event {index} has {field} {_shown(found.read)}, expected {_shown(found.written)}"
            )
        if found is not None:
            return f"event {index} is {_shown(event)}, expected {_shown(wanted)}"
    if len(expected) != len(recorded):
        return f"{len(recorded)} recorded, {len(expected)} expected"
    return None


def _listed(events: Sequence[object]) -> str:
    """``N events:`` and one numbered line each."""
    if not events:
        return "no events"
    lines = [f"{len(events)} event{'' if len(events) == 1 else 's'}:"]
    lines += [
        f"  {index}. {wanted.__qualname__} (any)"
        if isinstance(wanted, type)
        else f"  {index}. {_shown(wanted)}"
        for index, wanted in enumerate(events, start=1)
    ]
    return "\n".join(lines)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."
