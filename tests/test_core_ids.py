"""Ids: UUIDv7 for new aggregates, UUIDv5 for natural keys, and what a stream id may be."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facta import InvalidStreamId, id_from_key, ids, new_id
from facta.ids import uuid7, uuid_from_bytes, validate_stream_id


@contextmanager
def fake_clock(readings_ms: list[int]) -> Iterator[None]:
    """Make uuid7 read these clock values (then the last one forever), from a fresh state."""
    values = iter(readings_ms)
    last = [readings_ms[0]]

    def time_ns() -> int:
        last[0] = next(values, last[0])
        return last[0] * 1_000_000

    with (
        mock.patch.object(ids, "time", SimpleNamespace(time_ns=time_ns)),
        mock.patch.object(ids, "_last_ms", 0),
        mock.patch.object(ids, "_counter", 0),
    ):
        yield


def milliseconds(value: uuid.UUID) -> int:
    return value.int >> 80


def test_uuid7_has_version_7_and_the_rfc_variant() -> None:
    value = uuid7()
    assert (value.version, value.variant) == (7, uuid.RFC_4122)


def test_uuid7_starts_with_the_current_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= milliseconds(value) <= after + 1  # +1: a counter overflow borrows a ms


def test_uuid7s_made_in_a_row_strictly_increase() -> None:
    values = [uuid7() for _ in range(10_000)]
    assert values == sorted(set(values))


def test_uuid7s_made_within_one_millisecond_strictly_increase_past_the_counters_range() -> None:
    with fake_clock([1_000]):
        values = [uuid7() for _ in range(5_000)]  # more than the 12-bit counter holds
    assert values == sorted(set(values))
    assert all(v.version == 7 for v in values)


def test_uuid7s_keep_increasing_when_the_clock_steps_back() -> None:
    with fake_clock([5_000, 5_001, 4_000, 4_000, 5_001, 6_000]):
        values = [uuid7() for _ in range(6)]
    assert values == sorted(set(values))
    assert milliseconds(values[-1]) == 6_000


@given(st.lists(st.integers(min_value=1, max_value=2**47), min_size=1, max_size=60))
def test_uuid7s_increase_whatever_the_clock_reads(readings: list[int]) -> None:
    with fake_clock(readings):
        values = [uuid7() for _ in readings]
    assert values == sorted(set(values))
    assert {(v.version, v.variant) for v in values} == {(7, uuid.RFC_4122)}


def test_uuid7s_made_by_racing_threads_are_unique_and_increase_in_each_thread() -> None:
    made: list[list[uuid.UUID]] = [[] for _ in range(8)]
    start = threading.Barrier(len(made))

    def make(into: list[uuid.UUID]) -> None:
        start.wait()
        into.extend(uuid7() for _ in range(2_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(values == sorted(values) for values in made)
    assert len({v for values in made for v in values}) == 8 * 2_000


def test_new_id_is_the_canonical_text_of_a_uuid7() -> None:
    text = new_id()
    assert str(uuid.UUID(text)) == text
    assert uuid.UUID(text).version == 7


@given(st.binary(min_size=16, max_size=16))
def test_uuid_from_bytes_equals_the_checked_constructor(value: bytes) -> None:
    fast, checked = uuid_from_bytes(value), uuid.UUID(bytes=value)
    assert (fast, hash(fast), str(fast), fast.bytes) == (
        checked,
        hash(checked),
        str(checked),
        checked.bytes,
    )


def test_id_from_key_is_stable_across_releases() -> None:
    # Stored ids depend on this value: it must never change.
    assert id_from_key("customer", "ada@example.com") == "2100c4e1-58de-553f-ab63-f8e95064836a"


def test_id_from_key_keeps_kind_and_key_apart() -> None:
    assert id_from_key("a:b", "c") != id_from_key("a", "b:c")


@given(st.text(), st.text())
def test_id_from_key_is_a_deterministic_uuid5(kind: str, key: str) -> None:
    value = id_from_key(kind, key)
    assert value == id_from_key(kind, key)
    assert uuid.UUID(value).version == 5


def test_id_from_key_differs_by_kind_and_by_key() -> None:
    ids_made = {
        id_from_key("customer", "ada"),
        id_from_key("supplier", "ada"),
        id_from_key("customer", "bob"),
    }
    assert len(ids_made) == 3


@given(st.text(min_size=1, max_size=250).filter(lambda s: "\x00" not in s and not s.isspace()))
def test_any_short_string_without_nul_that_is_not_only_whitespace_is_a_stream_id(
    stream_id: str,
) -> None:
    assert validate_stream_id(stream_id) == stream_id


@pytest.mark.parametrize(
    "stream_id",
    ["", " \t", "a\x00b", "\ud800", "x" * 1001, 5, None, b"bytes", uuid.UUID(int=1), ["a"]],
    ids=[
        "empty",
        "whitespace",
        "nul",
        "lone-surrogate",
        "too-long",
        "int",
        "none",
        "bytes",
        "uuid",
        "list",
    ],
)
def test_a_stream_id_that_no_backend_can_store_is_rejected(stream_id: Any) -> None:
    with pytest.raises(InvalidStreamId):
        validate_stream_id(stream_id)


def test_a_rejected_stream_id_is_named_in_the_error() -> None:
    with pytest.raises(InvalidStreamId, match=r"'a\\x00b'"):
        validate_stream_id("a\x00b")
