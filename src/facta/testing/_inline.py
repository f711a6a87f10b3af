# WARNING: generated from src/facta/testing/_inline_async.py by tools/gen_sync.py; do not edit.
"""The contract's inline projection tests: handlers run in the append's transaction.

An inline projection stays registered for the store's life (there is no way to take one off),
so on a shared store each test's projection reads only ``Projected`` events, which no other
test writes, and leaves other streams alone.
"""

from __future__ import annotations

import pytest

from facta.appending import StreamAppend
from facta.ids import new_id
from facta.projections import ProjectionError, add_inline
from facta.store import EventStore
from facta.testing._projections import inline_tally
from facta.testing._read_model import ReadModel, unique_name
from facta.testing._support import ANY, assert_nothing_written, head, numbers, projected, read

__all__ = ["InlineContract"]


class InlineContract:
    """An inline handler sees every appended event; one that raises makes the append fail."""

    def test_an_inline_projection_sees_each_appended_event_before_the_append_returns(
        self, store: EventStore
    ) -> None:
        first, second = new_id(), new_id()
        model = ReadModel({first, second})
        add_inline(store, inline_tally(store, unique_name("inline"), model))
        store.append(first, projected(1, 2), ANY)
        assert model.calls == [(first, 1), (first, 2)]
        store.append_many(
            [StreamAppend(second, projected(3), ANY), StreamAppend(first, projected(4), ANY)]
        )
        assert model.calls == [(first, 1), (first, 2), (second, 1), (first, 3)]
        stored = [*read(store, first), *read(store, second)]
        stored.sort(key=lambda e: e.checkpoint)
        assert [(e.event_id, e.position, e.transaction_id) for e in model.events] == [
            (e.event_id, e.position, e.transaction_id) for e in stored
        ]
        assert [e.data.n for e in model.events] == [1, 2, 3, 4]

    def test_an_inline_handler_that_raises_fails_the_append_and_nothing_is_written(
        self, store: EventStore
    ) -> None:
        stream, name = new_id(), unique_name("refusing")
        model = ReadModel({stream}, refuse={3})
        add_inline(store, inline_tally(store, name, model))
        store.append(stream, projected(1), ANY)
        start = head(store)
        with pytest.raises(ProjectionError) as raised:
            store.append(stream, projected(2, 3), ANY)
        failure = raised.value
        assert (failure.projection, failure.stream_id, failure.version) == (name, stream, 3)
        assert_nothing_written(store, start)
        assert store.stream_version(stream) == 1
        result = store.append(stream, projected(4), ANY)
        assert result.version == 2
        assert numbers(read(store, stream)) == [1, 4]

    def test_an_inline_handler_that_raises_fails_a_multi_stream_append_whole(
        self, store: EventStore
    ) -> None:
        first, second = new_id(), new_id()
        model = ReadModel({first, second}, refuse={2})
        add_inline(store, inline_tally(store, unique_name("whole"), model))
        start = head(store)
        with pytest.raises(ProjectionError):
            store.append_many(
                [StreamAppend(first, projected(1), ANY), StreamAppend(second, projected(2), ANY)]
            )
        assert_nothing_written(store, start, first, second)
