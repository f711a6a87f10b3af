"""The contract's catch-up projection tests: checkpoints, rebuilds, dead letters and locks.

Through the public runner (``facta.projections``), with a read model that lives in the test;
every projection gets a name no other test uses, so a shared store keeps them apart.
"""

from __future__ import annotations

import pytest

from facta.ids import new_id
from facta.projections import (
    AsyncProjectionRunner,
    OnError,
    ProjectionError,
    ProjectionLocked,
    ProjectionStatus,
    statuses_async,
)
from facta.store_async import AsyncEventStore
from facta.testing._projections_async import AsyncTally
from facta.testing._read_model import ReadModel, unique_name
from facta.testing._support_async import ANY, head, projected, read

__all__ = ["AsyncProjectionContract"]


async def status_of(store: AsyncEventStore, name: str) -> ProjectionStatus:
    """The projection's line in ``statuses``, after checking they come by name."""
    await head(store)  # the log is readable up to here (PostgreSQL bindings wait in read_all)
    listed = await statuses_async(store)
    names = [status.name for status in listed]
    assert names == sorted(names)
    assert name in names
    return listed[names.index(name)]


class AsyncProjectionContract:
    """A runner applies each event once, keeps its place, rebuilds, parks and locks."""

    async def test_a_runner_applies_every_event_once_and_stops_at_the_last(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, projected(1, 2, 3), ANY)
        model = ReadModel({stream})
        async with AsyncProjectionRunner(store, AsyncTally(unique_name("once"), model)) as runner:
            await runner.catch_up()
            events = await read(store, stream)
            assert runner.checkpoint == events[-1].checkpoint
            assert await runner.lag() == 0
        assert model.calls == [(stream, 1), (stream, 2), (stream, 3)]
        assert model.applied == {(stream, 1): 1, (stream, 2): 2, (stream, 3): 3}
        assert [e.event_id for e in model.events] == [e.event_id for e in events]

    async def test_a_new_runner_of_a_projection_goes_on_from_its_checkpoint(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("resume")
        await store.append(stream, projected(1, 2), ANY)
        model = ReadModel({stream})
        async with AsyncProjectionRunner(store, AsyncTally(name, model)) as runner:
            await runner.catch_up()
            first = runner.checkpoint
        await store.append(stream, projected(3), ANY)
        model.calls.clear()
        async with AsyncProjectionRunner(store, AsyncTally(name, model)) as runner:
            assert runner.checkpoint == first
            await runner.catch_up()
            assert runner.checkpoint == (await read(store, stream))[-1].checkpoint
        assert model.calls == [(stream, 3)]
        assert model.applied == {(stream, 1): 1, (stream, 2): 2, (stream, 3): 3}

    async def test_rebuild_empties_the_read_model_and_replays_the_log(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, projected(1, 2, 3), ANY)
        model = ReadModel({stream})
        async with AsyncProjectionRunner(
            store, AsyncTally(unique_name("rebuild"), model)
        ) as runner:
            await runner.catch_up()
            last = runner.checkpoint
            model.calls.clear()
            replayed = await runner.rebuild()
            assert runner.checkpoint == last
        assert model.resets == 1
        assert replayed >= 3
        assert model.calls == [(stream, 1), (stream, 2), (stream, 3)]
        assert model.applied == {(stream, 1): 1, (stream, 2): 2, (stream, 3): 3}

    async def test_a_failing_handler_stops_the_runner_just_before_its_event(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("stop")
        await store.append(stream, projected(1, 2, 3), ANY)
        events = await read(store, stream)
        model = ReadModel({stream}, refuse={2})
        async with AsyncProjectionRunner(store, AsyncTally(name, model)) as runner:
            with pytest.raises(ProjectionError) as raised:
                await runner.catch_up()
            assert runner.checkpoint == events[0].checkpoint
        failure = raised.value
        assert (failure.projection, failure.stream_id, failure.version) == (name, stream, 2)
        assert model.applied == {(stream, 1): 1}
        status = await status_of(store, name)
        assert (status.state, status.checkpoint) == ("failed", events[0].checkpoint)
        assert status.error is not None
        assert "refused event 2" in status.error
        model.refuse.clear()
        async with AsyncProjectionRunner(store, AsyncTally(name, model)) as runner:
            await runner.catch_up()
            assert runner.checkpoint == events[-1].checkpoint
        assert model.applied == {(stream, 1): 1, (stream, 2): 2, (stream, 3): 3}

    async def test_dead_letter_parks_a_failing_event_and_the_runner_goes_on(
        self, store: AsyncEventStore
    ) -> None:
        stream = new_id()
        await store.append(stream, projected(1, 2, 3), ANY)
        events = await read(store, stream)
        model = ReadModel({stream}, refuse={2})
        tally = AsyncTally(unique_name("parking"), model)
        async with AsyncProjectionRunner(store, tally, on_error=OnError.DEAD_LETTER) as runner:
            await runner.catch_up()
            assert runner.checkpoint == events[-1].checkpoint
            letters = await runner.dead_letters()
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
            assert (await status_of(store, tally.name)).dead_letters == 1
            model.refuse.clear()
            await runner.rebuild()
            assert await runner.dead_letters() == []
        assert model.applied == {(stream, 1): 1, (stream, 2): 2, (stream, 3): 3}

    async def test_a_second_runner_of_a_running_projection_is_refused(
        self, store: AsyncEventStore
    ) -> None:
        name = unique_name("locked")
        async with AsyncProjectionRunner(store, AsyncTally(name, ReadModel(()))):
            second = AsyncProjectionRunner(store, AsyncTally(name, ReadModel(())), wait=False)
            with pytest.raises(ProjectionLocked) as raised:
                await second.open()
            assert raised.value.projection == name
        async with AsyncProjectionRunner(store, AsyncTally(name, ReadModel(()))) as third:
            assert await third.lag() >= 0  # free again once the first one stopped

    async def test_statuses_list_the_projection_with_its_checkpoint_lag_and_state(
        self, store: AsyncEventStore
    ) -> None:
        stream, name = new_id(), unique_name("status")
        await store.append(stream, projected(1, 2), ANY)
        async with AsyncProjectionRunner(store, AsyncTally(name, ReadModel({stream}))) as runner:
            await runner.catch_up()
            checkpoint = runner.checkpoint
            status = await status_of(store, name)
            assert (status.checkpoint, status.lag, status.state) == (checkpoint, 0, "running")
        await store.append(stream, projected(3, 4), ANY)
        status = await status_of(store, name)
        assert (status.checkpoint, status.lag, status.state) == (checkpoint, 2, "stopped")
        assert status.error is None
