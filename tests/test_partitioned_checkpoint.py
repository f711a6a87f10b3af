"""The composite checkpoint of partitioned stores, without a database: merging pages."""

from __future__ import annotations

import copy
import pickle
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from facta.backends.partitioned.checkpoint import (
    PartitionPlaces,
    checkpoint_parts,
    merge_pages,
    partitioned_checkpoint,
)
from facta.errors import InvalidCheckpoint
from facta.events import Checkpoint
from facta.records import StoredEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(stream: str, transaction_id: int, position: int, second: int) -> StoredEvent:
    at = T0 + timedelta(seconds=second)
    return StoredEvent(stream, 1, position, transaction_id, uuid.uuid4(), "t", 1, 0, b"", b"", at)


def test_pages_merge_by_recording_time_keeping_each_partitions_order() -> None:
    pages = {
        "p1": [row("a", 10, 1, 0), row("a", 10, 2, 5)],
        "p2": [row("b", 7, 1, 1), row("b", 9, 2, 2)],
    }
    merged = merge_pages(pages, {"p1": Checkpoint(), "p2": Checkpoint()}, 10)
    assert [(e.stream_id, e.position) for e in merged] == [("a", 1), ("b", 1), ("b", 2), ("a", 2)]
    assert checkpoint_parts(merged[2].checkpoint) == {
        "p1": Checkpoint(10, 1),
        "p2": Checkpoint(9, 2),
    }
    assert merged[2].checkpoint == Checkpoint(9, 2)  # it shows the event's own pair


def test_a_merged_page_stops_at_the_limit_and_keeps_the_places_of_partitions_not_read() -> None:
    pages = {"p1": [row("a", 3, 1, 0), row("a", 3, 2, 1)], "p2": []}
    places = {"p1": Checkpoint(), "p2": Checkpoint(4, 4), "p3": Checkpoint(8, 1)}
    (only,) = merge_pages(pages, places, 1)
    assert checkpoint_parts(only.checkpoint) == {
        "p1": Checkpoint(3, 1),
        "p2": Checkpoint(4, 4),
        "p3": Checkpoint(8, 1),
    }


def test_the_composite_survives_pickling_and_copying() -> None:
    checkpoint = partitioned_checkpoint({"p1": Checkpoint(3, 4), "p2": Checkpoint()})
    for again in (pickle.loads(pickle.dumps(checkpoint)), copy.deepcopy(checkpoint)):
        assert checkpoint_parts(again) == {"p1": Checkpoint(3, 4), "p2": Checkpoint()}


def test_the_start_has_no_parts_and_another_plain_pair_is_refused() -> None:
    assert checkpoint_parts(Checkpoint()) == {}
    with pytest.raises(InvalidCheckpoint, match="one place per partition"):
        checkpoint_parts(Checkpoint(1, 2))


def test_msgspec_encodes_the_transaction_id_as_its_int_with_enc_hook_int() -> None:
    places = PartitionPlaces(5, (("p1", 5, 3),))
    assert msgspec.json.encode([places], enc_hook=int) == b"[5]"
