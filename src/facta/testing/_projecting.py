# WARNING: generated from src/facta/testing/_projecting_async.py by tools/gen_sync.py; do not edit.
"""The contract's catch-up projection tests: checkpoints, rebuilds, dead letters and locks.

Through the public runner (``facta.projections``), with a read model that lives in the test;
every projection gets a name no other test uses, so a shared store keeps them apart.
"""

from __future__ import annotations

import pytest

from facta.ids import new_id
from facta.projections import (
    OnError,
    ProjectionError,
    ProjectionLocked,
    ProjectionRunner,
    ProjectionStatus,
    statuses,
)
from facta.store import EventStore
from facta.testing._projections import Tally
from facta.testing._read_model import ReadModel, unique_name
from facta.testing._support import ANY, head, projected, read

__all__ = ["ProjectionContract"]


def status_of(store: EventStore, name: str) -> ProjectionStatus:
    """The projection's line in ``statuses``, after checking they come by name."""
    head(store)  # the log is readable up to here (PostgreSQL bindings wait in read_all)
    listed = statuses(store)
    names = [status.name for status in listed]
    assert names == sorted(names)
    assert name in names
    return listed[names.index(name)]


class ProjectionContract:
    """A runner applies each event once, keeps its place, rebuilds, parks and locks."""

    def test_a_runner_applies_every_event_once_and_stops_at_the_last(
        self, store: EventStore
    ) -> None:
        stream = new_id()
        store.append(stream, projected(1, 2, 3), ANY)
        model = ReadModel({stream})
        with ProjectionRunner(store, Tally(unique_name("once"), model)) as runner:
            runner.catch_up()
            events = read(store, stream)
            assert runner.checkpoint == events[-1].checkpoint
            assert runner.lag() == 0
        assert model.calls == [(stream, 1), (stream, 2), (stream, 3)]
        assert model.applied == {(stream, 1): 1, (stream, 2): 2, (stream, 3): 3}
        assert [e.event_id for e in model.events] == [e.event_id for e in events]

    def test_a_new_runner_of_a_projection_goes_on_from_its_checkpoint(
        self, store: EventStore
    ) -> None:
        stream, name = new_id(), unique_name("resume")
        store.append(stream, projected(1, 2), ANY)
        model = ReadModel({stream})
        with ProjectionRunner(store, Tally(name, model)) as runner:
            runner.catch_up()
            first = runner.checkpoint
        store.append(stream, projected(3), ANY)
        model.calls.clear()
        with ProjectionRunner(store, Tally(name, model)) as runner:
            assert runner.checkpoint == first
            runner.catch_up()
            assert runner.checkpoint == (read(store, stream))[-1].checkpoint
        assert model.calls == [(stream, 3)]
        assert model.applied == {(stream, 1): 1, (stream, 2): 2, (stream, 3): 3}

    def test_rebuild_empties_the_read_model_and_replays_the_log(self, store: EventStore) -> None:
        stream = new_id()
        store.append(stream, projected(1, 2, 3), ANY)
        model = ReadModel({stream})
        with ProjectionRunner(store, Tally(unique_name("rebuild"), model)) as runner:
            runner.catch_up()
            last = runner.checkpoint
            model.calls.clear()
            replayed = runner.rebuild()
            assert runner.checkpoint == last
        assert model.resets == 1
        assert replayed >= 3
        assert model.calls == [(stream, 1), (stream, 2), (stream, 3)]
        assert model.applied == {(stream, 1): 1, (stream, 2): 2, (stream, 3): 3}

    def test_a_failing_handler_stops_the_runner_just_before_its_event(
        self, store: EventStore
    ) -> None:
        stream, name = new_id(), unique_name("stop")
        store.append(stream, projected(1, 2, 3), ANY)
        events = read(store, stream)
        model = ReadModel({stream}, refuse={2})
        with ProjectionRunner(store, Tally(name, model)) as runner:
            with pytest.raises(ProjectionError) as raised:
                runner.catch_up()
            assert runner.checkpoint == events[0].checkpoint
        failure = raised.value
        assert (failure.projection, failure.stream_id, failure.version) == (name, stream, 2)
        assert model.applied == {(stream, 1): 1}
        status = status_of(store, name)
        assert (status.state, status.checkpoint) == ("failed", events[0].checkpoint)
        assert status.error is not None
        assert "refused event 2" in status.error
        model.refuse.clear()
        with ProjectionRunner(store, Tally(name, model)) as runner:
            runner.catch_up()
            assert runner.checkpoint == events[-1].checkpoint
        assert model.applied == {(stream, 1): 1, (stream, 2): 2, (stream, 3): 3}

    def test_dead_letter_parks_a_failing_event_and_the_runner_goes_on(
        self, store: EventStore
    ) -> None:
        stream = new_id()
        store.append(stream, projected(1, 2, 3), ANY)
        events = read(store, stream)
        model = ReadModel({stream}, refuse={2})
        tally = Tally(unique_name("parking"), model)
        with ProjectionRunner(store, tally, on_error=OnError.DEAD_LETTER) as runner:
            runner.catch_up()
            assert runner.checkpoint == events[-1].checkpoint
            letters = runner.dead_letters()
            parked = events[1]
            assert [
                (d.stream_id, d.version, d.position, d.transaction_id, d.event_id, d.type)
                for d in letters
            ] == [
                (
                    stream,
                    2,
                    parked.position,
                    parked.transaction_id,
                    parked.event_id,
                    "facta.testing.Projected",
                )
            ]
            assert "refused event 2" in letters[0].error
            assert model.applied == {(stream, 1): 1, (stream, 3): 3}
            assert (status_of(store, tally.name)).dead_letters == 1
            model.refuse.clear()
            runner.rebuild()
            assert runner.dead_letters() == []
        assert model.applied == {(stream, 1): 1, (stream, 2): 2, (stream, 3): 3}

    def test_a_second_runner_of_a_running_projection_is_refused(self, store: EventStore) -> None:
        name = unique_name("locked")
        with ProjectionRunner(store, Tally(name, ReadModel(()))):
            second = ProjectionRunner(store, Tally(name, ReadModel(())), wait=False)
            with pytest.raises(ProjectionLocked) as raised:
                second.open()
            assert raised.value.projection == name
        with ProjectionRunner(store, Tally(name, ReadModel(()))) as third:
            assert third.lag() >= 0  # free again once the first one stopped

    def test_statuses_list_the_projection_with_its_checkpoint_lag_and_state(
        self, store: EventStore
    ) -> None:
        stream, name = new_id(), unique_name("status")
        store.append(stream, projected(1, 2), ANY)
        with ProjectionRunner(store, Tally(name, ReadModel({stream}))) as runner:
            runner.catch_up()
            checkpoint = runner.checkpoint
            status = status_of(store, name)
            assert (status.checkpoint, status.lag, status.state) == (checkpoint, 0, "running")
        store.append(stream, projected(3, 4), ANY)
        status = status_of(store, name)
        assert (status.checkpoint, status.lag, status.state) == (checkpoint, 2, "stopped")
        assert status.error is None
