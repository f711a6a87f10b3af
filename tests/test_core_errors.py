"""The error tree: one root, familiar built-in bases, messages that name what went wrong."""

from __future__ import annotations

import pickle

import pytest

import facta
from facta import (
    AggregateNotFound,
    ConcurrencyError,
    CrossPartitionAppend,
    DecodeError,
    DuplicateEventId,
    EventTooLarge,
    ExpectedVersion,
    FactaError,
    InvalidEvent,
    InvalidStreamId,
    RetriesExhausted,
    SchemaVersionError,
    StoreError,
    TransactionConflict,
    UnknownEventType,
    UnusableConnection,
)

PUBLIC_ERRORS = [
    value
    for name in facta.__all__
    if isinstance(value := getattr(facta, name), type) and issubclass(value, Exception)
]


@pytest.mark.parametrize("error", PUBLIC_ERRORS, ids=lambda error: error.__name__)
def test_every_public_error_is_a_facta_error(error: type[Exception]) -> None:
    assert issubclass(error, FactaError)


@pytest.mark.parametrize(
    ("error", "base"),
    [
        (InvalidStreamId, ValueError),
        (InvalidEvent, ValueError),
        (DecodeError, ValueError),
        (UnknownEventType, LookupError),
        (AggregateNotFound, LookupError),
        (EventTooLarge, InvalidEvent),
        (DuplicateEventId, InvalidEvent),
        (SchemaVersionError, StoreError),
        (TransactionConflict, ConcurrencyError),
        (UnusableConnection, ValueError),
    ],
)
def test_errors_keep_the_built_in_base_callers_already_catch(
    error: type[Exception], base: type[Exception]
) -> None:
    assert issubclass(error, base)


@pytest.mark.parametrize(
    ("expected", "shown"),
    [(ExpectedVersion.ANY, "ANY"), (ExpectedVersion.NO_STREAM, "NO_STREAM"), (5, "5")],
)
def test_a_concurrency_error_names_the_stream_and_both_versions(expected: int, shown: str) -> None:
    error = ConcurrencyError("order-1", expected, 3)
    assert (error.stream_id, error.expected, error.actual) == ("order-1", expected, 3)
    assert str(error).startswith(
        f"stream 'order-1': expected version {shown}, but the stream is at version 3"
    )


def test_retries_exhausted_says_how_many_attempts_were_made() -> None:
    last = ConcurrencyError("order-1", 4, 5)
    error = RetriesExhausted("order-1", 7, last)
    assert (error.stream_id, error.attempts, error.last) == ("order-1", 7, last)
    assert "'order-1': gave up after 7 attempts" in str(error)


def test_aggregate_not_found_names_the_type_and_id() -> None:
    error = AggregateNotFound("Account", "a-1")
    assert str(error) == "no Account with id 'a-1': its stream holds no events"


def test_event_too_large_gives_the_size_and_the_limit() -> None:
    error = EventTooLarge("s-1", "Big", 2_000_000, 1_000_000)
    assert "'Big' for stream 's-1' is 2,000,000 bytes" in str(error)
    assert "limit of 1,000,000 bytes" in str(error)


@pytest.mark.parametrize(
    "error",
    [
        ConcurrencyError("s-1", ExpectedVersion.STREAM_EXISTS, 0),
        TransactionConflict("s-1", 2, 3, "a younger transaction appended"),
        RetriesExhausted("s-1", 3, ConcurrencyError("s-1", 1, 2)),
        AggregateNotFound("Account", "s-1"),
        EventTooLarge("s-1", "Big", 10, 5),
        InvalidEvent("stream 's-1': bad"),
        CrossPartitionAppend({"p1": ["a-1"], "p2": ["b-1", "b-2"]}),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_survive_pickling_with_their_fields(error: FactaError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy)) == (type(error), str(error))
    assert {k: repr(v) for k, v in vars(copy).items()} == {
        k: repr(v) for k, v in vars(error).items()
    }
