"""Catch-up projections on every backend: checkpoints, one runner at a time, failures, rebuild."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

import facta
from facta.projections import (
    OnError,
    Projection,
    ProjectionError,
    ProjectionLocked,
    ProjectionRunner,
    handles,
    statuses,
)


@facta.event("test.projections.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


@facta.event("test.projections.Withdrawn")
@dataclass(frozen=True)
class Withdrawn:
    amount: int


@facta.event("test.projections.Noted")
@dataclass(frozen=True)
class Noted:
    text: str


PATIENCE = 30.0  # seconds to wait for other sessions' transactions (PostgreSQL)
POISON = 666  # a handler raises on a deposit of this amount

Totals = dict[str, tuple[int, int]]  # stream id -> (balance, events applied)


def change(event: facta.RecordedEvent) -> int:
    data = event.data
    if isinstance(data, Deposited) and data.amount == POISON:
        raise ValueError(f"poisoned deposit on {event.stream_id}")
    return data.amount if isinstance(data, Deposited) else -data.amount


class MemoryTotals(Projection[None]):
    name = "totals"

    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    def reset(self, connection: None) -> None:
        self.totals.clear()

    @handles(Deposited, Withdrawn)
    def changed(self, event: facta.RecordedEvent, connection: None) -> None:
        amount = change(event)
        balance, count = self.totals.get(event.stream_id, (0, 0))
        self.totals[event.stream_id] = (balance + amount, count + 1)


class SQLiteTotals(Projection[sqlite3.Connection]):
    name = "totals"

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS totals"
            " (stream_id TEXT PRIMARY KEY, balance INTEGER NOT NULL, events INTEGER NOT NULL)"
        )

    def reset(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM totals")

    @handles(Deposited, Withdrawn)
    def changed(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO totals VALUES (?, ?, 1) ON CONFLICT (stream_id) DO UPDATE"
            " SET balance = balance + excluded.balance, events = events + 1",
            (event.stream_id, change(event)),
        )


class PostgresTotals(Projection[psycopg.Connection[Any]]):
    name = "totals"

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS totals"
            " (stream_id text PRIMARY KEY, balance bigint NOT NULL, events bigint NOT NULL)"
        )

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("DELETE FROM totals")

    @handles(Deposited, Withdrawn)
    def changed(self, event: facta.RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "INSERT INTO totals VALUES (%s, %s, 1) ON CONFLICT (stream_id) DO UPDATE"
            " SET balance = totals.balance + excluded.balance, events = totals.events + 1",
            (event.stream_id, change(event)),
        )


class Model:
    """The totals projection for one store's backend, and a look at its read model."""

    def __init__(self, store: facta.EventStore, backend: str) -> None:
        self.store, self.backend = store, backend
        self.memory: Totals = {}

    def projection(self) -> Projection[Any]:
        if self.backend == "sqlite":
            return SQLiteTotals()
        if self.backend == "postgres":
            return PostgresTotals()
        return MemoryTotals(self.memory)

    def runner(self, **options: Any) -> ProjectionRunner[Any]:
        return ProjectionRunner(self.store, self.projection(), **options)

    def read(self) -> Totals:
        if self.backend == "memory":
            return dict(self.memory)
        with self.store.recorder.transaction() as conn:  # the read model's database
            rows = conn.execute("SELECT * FROM totals").fetchall()
        return {stream_id: (balance, count) for stream_id, balance, count in rows}


@pytest.fixture
def model(store: facta.EventStore, backend: str) -> Model:
    return Model(store, backend)


def expected(store: facta.EventStore) -> Totals:
    """The totals computed straight from the log."""
    totals: Totals = {}
    for event in store.read_all(types=["test.projections.Deposited", "test.projections.Withdrawn"]):
        balance, count = totals.get(event.stream_id, (0, 0))
        totals[event.stream_id] = (balance + change(event), count + 1)
    return totals


def settle(store: facta.EventStore) -> None:
    """On PostgreSQL, wait until readers see every committed event of the store.

    Another session's open transaction (other tests on a shared server) holds new events back
    from read_all for a moment: the price of never skipping one.
    """
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None:
        assert wait(PATIENCE), "the global log stayed held back"


def append(store: facta.EventStore, stream_id: str, events: list[object]) -> None:
    store.append(stream_id, events, facta.ANY)
    settle(store)


def fill(store: facta.EventStore, count: int = 12) -> None:
    for i in range(count):
        store.append(
            f"account-{i % 3}", [Deposited(10 + i), Noted(f"note {i}"), Withdrawn(i)], facta.ANY
        )
    settle(store)


def test_catch_up_applies_every_handled_event_once(store: facta.EventStore, model: Model) -> None:
    fill(store)
    with model.runner(batch_size=5) as runner:
        applied = runner.catch_up()
    assert applied == 24
    assert model.read() == expected(store)


def test_catch_up_leaves_the_checkpoint_on_the_last_handled_event(
    store: facta.EventStore, model: Model
) -> None:
    fill(store, 2)
    last = list(store.read_all(types=["test.projections.Withdrawn"]))[-1]
    with model.runner() as runner:
        runner.catch_up()
        assert runner.checkpoint == last.checkpoint
        assert runner.lag() == 0


def test_a_restarted_runner_resumes_after_its_checkpoint(
    store: facta.EventStore, model: Model
) -> None:
    fill(store, 3)
    with model.runner() as runner:
        runner.catch_up()
    fill(store, 4)
    with model.runner() as runner:
        assert runner.lag() == 8
        assert runner.catch_up() == 8
    assert model.read() == expected(store)


def test_events_of_other_types_are_never_decoded(store: facta.EventStore, model: Model) -> None:
    fill(store, 2)
    registry = facta.EventRegistry()  # knows the handled classes only: Noted would not decode
    registry.register(Deposited, "test.projections.Deposited")
    registry.register(Withdrawn, "test.projections.Withdrawn")
    store.codec = facta.Codec(registry)
    with model.runner() as runner:
        assert runner.catch_up() == 4
    assert model.read() == expected(store)


def test_a_second_runner_of_a_running_projection_is_refused(
    store: facta.EventStore, model: Model
) -> None:
    with model.runner(), pytest.raises(ProjectionLocked, match="'totals' is already running"):
        model.runner().open()


def test_a_waiting_runner_starts_once_the_first_one_stops(
    store: facta.EventStore, model: Model
) -> None:
    fill(store, 1)
    first = model.runner()
    first.open()
    opened = threading.Event()

    def second() -> None:
        with model.runner(wait=True, poll_interval=0.01) as runner:
            opened.set()
            runner.catch_up()

    thread = threading.Thread(target=second)
    thread.start()
    assert not opened.wait(0.2)
    first.close()
    thread.join()
    assert opened.is_set()
    assert model.read() == expected(store)


def test_a_failing_handler_stops_the_runner_with_an_error_naming_the_event(
    store: facta.EventStore, model: Model
) -> None:
    fill(store, 2)
    append(store, "account-9", [Deposited(POISON)])
    with model.runner() as runner, pytest.raises(ProjectionError) as failure:
        runner.catch_up()
    error = failure.value
    assert (error.projection, error.stream_id, error.version, error.type) == (
        "totals",
        "account-9",
        1,
        "test.projections.Deposited",
    )
    assert isinstance(error.cause, ValueError)
    assert f"position {error.position}" in str(error)
    assert "poisoned deposit on account-9" in str(error)


def test_a_failing_handler_leaves_the_checkpoint_just_before_its_event(
    store: facta.EventStore, model: Model
) -> None:
    fill(store, 2)
    append(store, "account-9", [Deposited(1), Deposited(POISON), Deposited(2)])
    before_poison = list(store.read_all())[-3].checkpoint
    with model.runner(batch_size=100) as runner, pytest.raises(ProjectionError):
        runner.catch_up()
    with model.runner() as runner:
        assert runner.checkpoint == before_poison
    assert model.read()["account-9"] == (1, 1)


def test_a_failed_projection_shows_as_failed_with_its_error(
    store: facta.EventStore, model: Model
) -> None:
    append(store, "account-9", [Deposited(POISON)])
    with model.runner() as runner, pytest.raises(ProjectionError):
        runner.catch_up()
    (status,) = statuses(store)
    assert (status.name, status.state, status.lag) == ("totals", "failed", 1)
    assert status.error is not None
    assert "poisoned deposit" in status.error


def test_the_dead_letter_policy_parks_the_failing_event_and_goes_on(
    store: facta.EventStore, model: Model
) -> None:
    append(store, "account-9", [Deposited(1), Deposited(POISON), Deposited(2)])
    poisoned = list(store.read_all())[1]
    with model.runner(on_error=OnError.DEAD_LETTER) as runner:
        assert runner.catch_up() == 3
        (parked,) = runner.dead_letters()
        assert runner.lag() == 0
    assert (parked.stream_id, parked.version, parked.position, parked.event_id) == (
        "account-9",
        2,
        poisoned.position,
        poisoned.event_id,
    )
    assert parked.error == "ValueError: poisoned deposit on account-9"
    assert model.read() == {"account-9": (3, 2)}


def test_rebuild_empties_the_read_model_and_replays_the_log(
    store: facta.EventStore, model: Model
) -> None:
    fill(store, 3)
    with model.runner() as runner:
        runner.catch_up()
    fill(store, 2)
    progress: list[tuple[int, int]] = []
    with model.runner(batch_size=4) as runner:
        assert runner.rebuild(lambda done, total: progress.append((done, total))) == 10
    assert model.read() == expected(store)
    assert progress == [(4, 10), (8, 10), (10, 10)]


def test_rebuild_without_a_reset_hook_says_so_and_changes_nothing(tmp_path: Path) -> None:
    class NoReset(SQLiteTotals):
        reset = Projection.reset  # type: ignore[assignment]

    with facta.connect(f"sqlite:///{tmp_path / 'events.db'}") as store:
        fill(store, 2)
        with ProjectionRunner(store, NoReset()) as runner:
            runner.catch_up()
            with pytest.raises(NotImplementedError, match="has no reset"):
                runner.rebuild()
            assert runner.lag() == 0
        assert Model(store, "sqlite").read() == expected(store)


def test_run_follows_new_events_until_stopped(store: facta.EventStore, model: Model) -> None:
    runner = model.runner(poll_interval=0.01)
    with runner:
        thread = threading.Thread(target=runner.run)
        thread.start()
        fill(store, 2)
        for _ in range(500):
            if runner.lag() == 0 and runner.checkpoint != facta.Checkpoint():
                break
            threading.Event().wait(0.01)
        runner.stop()
        thread.join()
    assert model.read() == expected(store)


def test_statuses_show_checkpoint_lag_and_state(store: facta.EventStore, model: Model) -> None:
    fill(store, 2)
    with model.runner(batch_size=3) as runner:
        runner.catch_up()
        checkpoint = runner.checkpoint
        fill(store, 1)
        (running,) = statuses(store)
    (stopped,) = statuses(store)
    assert running == ("totals", checkpoint, 2, "running", None, 0)
    assert stopped == ("totals", checkpoint, 2, "stopped", None, 0)


def test_a_store_without_projections_has_no_statuses(store: facta.EventStore) -> None:
    assert statuses(store) == []


def test_a_projection_without_a_name_is_refused(store: facta.EventStore) -> None:
    class Nameless(Projection[None]):
        pass

    with pytest.raises(ValueError, match=r"projection.s .*name must be"):
        ProjectionRunner(store, Nameless())


def test_two_handlers_for_one_event_class_are_refused() -> None:
    with pytest.raises(TypeError, match="handled by both"):

        class Twice(Projection[None]):
            name = "twice"

            @handles(Deposited)
            def one(self, event: facta.RecordedEvent, connection: None) -> None: ...

            @handles(Deposited)
            def two(self, event: facta.RecordedEvent, connection: None) -> None: ...


def test_a_handler_for_an_unregistered_class_is_refused(store: facta.EventStore) -> None:
    @dataclass(frozen=True)
    class Unregistered:
        x: int

    class Odd(Projection[None]):
        name = "odd"

        @handles(Unregistered)
        def odd(self, event: facta.RecordedEvent, connection: None) -> None: ...

    with pytest.raises(facta.InvalidEvent, match="Unregistered, which is not a registered"):
        ProjectionRunner(store, Odd()).open()


def test_a_sqlite_memory_database_cannot_be_shared_with_a_runner() -> None:
    with (
        facta.connect("sqlite:///:memory:") as store,
        pytest.raises(ValueError, match="':memory:' store is private"),
    ):
        ProjectionRunner(store, SQLiteTotals())


def test_a_handler_that_fails_once_passes_when_retried_alone(
    store: facta.EventStore, model: Model
) -> None:
    fill(store, 2)
    projection = model.projection()
    failures = iter([ValueError("blip")])
    original = projection.changed  # type: ignore[attr-defined]

    def flaky(event: facta.RecordedEvent, connection: Any) -> None:
        if event.version == 2 and (error := next(failures, None)) is not None:
            raise error
        original(event, connection)

    projection.changed = flaky  # type: ignore[attr-defined]
    with ProjectionRunner(store, projection) as runner:
        assert runner.catch_up() == 4
    assert model.read() == expected(store)


DEPOSITED = "test.projections.Deposited"


def test_events_renamed_by_upcasters_reach_the_handler_of_their_new_class(
    store: facta.EventStore, model: Model
) -> None:
    registry = store.codec.registry
    writer = facta.EventRegistry()

    @facta.event("test.projections.Credited", registry=writer)
    @dataclass(frozen=True)
    class Credited:
        amount: int

    store.codec = facta.Codec(writer)
    append(store, "account-1", [Credited(5)])
    casts = facta.Upcasters()
    casts.register("test.projections.Credited", 1, lambda data: data, to_type=DEPOSITED)
    store.codec = facta.Codec(registry, casts)
    append(store, "account-1", [Deposited(7)])
    with model.runner() as runner:
        assert runner.catch_up() == 2
    assert model.read() == {"account-1": (12, 2)}
