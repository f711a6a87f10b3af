"""The inbox's rules with a source that lives in the test, on stores whose read model is SQL:
a batch's effects and its streams' versions commit together (a failure or a crash leaves
nothing half-applied), messages that do not read or decode, types the projection does not
handle, upcasting on the receiving side, the lock, back-off and statuses. (The contract suite
runs the policies on every backend; tests/test_inbox_brokers.py runs inboxes on the brokers.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

import facta
from facta.errors import ProjectionLocked, StoreError
from facta.events import Checkpoint, RecordedEvent
from facta.projections import AsyncProjection, OnError, Projection, handles, statuses_async
from facta.publishing import (
    BrokerUnavailable,
    Delivery,
    Gaps,
    Inbox,
    InboxError,
    InvalidMessage,
    Source,
    message_for,
)
from facta.publishing.received import read_headers
from facta.recorder_async import AsyncCheckpoints
from facta.records import DeadLetter, StoredEvent


@facta.event("tests.inbox.Paid")
@dataclass(frozen=True)
class Paid:
    amount: int


@facta.event("tests.inbox.Refunded", version=2)
@dataclass(frozen=True)
class Refunded:
    amount: int
    reason: str


class Ledger(AsyncProjection[Any]):
    """Writes one row per event it applies, numbered in the order applied: a row twice is an
    event applied twice, whatever rolled back in between. ``fail`` makes the handler of
    those amounts raise, after writing its row."""

    name = "ledger"

    def __init__(self, fail: Sequence[int] = ()) -> None:
        self.fail = set(fail)

    async def setup(self, connection: Any) -> None:
        if isinstance(connection, sqlite3.Connection):
            connection.execute(
                "CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " stream TEXT, version INT, amount INT)"
            )
        else:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS ledger (seq bigint GENERATED ALWAYS AS IDENTITY"
                " PRIMARY KEY, stream text, version int, amount int)"
            )

    @handles(Paid, Refunded)
    async def entered(self, event: RecordedEvent, connection: Any) -> None:
        amount = event.data.amount if isinstance(event.data, Paid) else -event.data.amount
        row = (event.stream_id, event.version, amount)
        if isinstance(connection, sqlite3.Connection):
            connection.execute("INSERT INTO ledger (stream, version, amount) VALUES (?, ?, ?)", row)
        else:
            await connection.execute(
                "INSERT INTO ledger (stream, version, amount) VALUES (%s, %s, %s)", row
            )
        if event.data.amount in self.fail:
            raise RuntimeError(f"amount {event.data.amount} is refused")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str) -> str:
    """A store whose read model commits with the inbox's state: SQLite, PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'receiver.db'}"
    schema = request.getfixturevalue("pg_schema")
    return f"{postgres_url}?schema={schema}"


@pytest.fixture
async def receiver(sql_url: str) -> AsyncIterator[facta.AsyncEventStore]:
    async with facta.connect_async(sql_url) as store:
        yield store


async def ledger(store: facta.AsyncEventStore) -> list[tuple[str, int, int]]:
    """The ledger's rows in the order written: (stream, version, amount)."""
    async with store.recorder.transaction() as connection:
        query = "SELECT stream, version, amount FROM ledger ORDER BY seq"
        if isinstance(connection, sqlite3.Connection):
            return [tuple(row) for row in connection.execute(query).fetchall()]
        cursor = await connection.execute(query)
        return [tuple(row) for row in await cursor.fetchall()]


def stored(
    stream_id: str,
    version: int,
    data: object,
    *,
    type_name: str = "tests.inbox.Paid",
    schema_version: int = 1,
) -> StoredEvent:
    return StoredEvent(
        stream_id,
        version,
        version,
        0,
        uuid.uuid4(),
        type_name,
        schema_version,
        0,
        msgspec.json.encode(data),
        b"{}",
        datetime.now(UTC),
    )


def delivery(row: StoredEvent, **headers: str) -> Delivery:
    message = message_for(row, "correlated", None, prefix="shop")
    return Delivery(message.subject, {**message.headers, **headers}, message.data, object())


def paid(stream_id: str, *amounts: int, first: int = 1) -> list[Delivery]:
    return [delivery(stored(stream_id, v, Paid(a))) for v, a in enumerate(amounts, first)]


class Queue(Source):
    """Delivers what it is given; ``crash_on_ack`` dies (as the process would) once the
    inbox committed and acknowledges; ``down`` receives fail as if the broker were away."""

    def __init__(self, *deliveries: Delivery) -> None:
        self.waiting = list(deliveries)
        self.acknowledged: list[Delivery] = []
        self.crash_on_ack = False
        self.down = 0
        self.opened = 0

    async def open(self, inbox: str) -> None:
        self.opened += 1

    async def receive(self, limit: int, wait: float) -> list[Delivery]:
        if self.down:
            self.down -= 1
            raise BrokerUnavailable("connection refused")
        taken, self.waiting = self.waiting[:limit], self.waiting[limit:]
        if not taken:
            await asyncio.sleep(wait)  # as a broker's subscription waits for messages
        return taken

    async def acknowledge(self, deliveries: Sequence[Delivery]) -> None:
        if self.crash_on_ack:
            raise Crash
        self.acknowledged.extend(deliveries)

    async def refuse(self, deliveries: Sequence[Delivery], delay: float) -> None:
        self.waiting.extend(deliveries)

    async def close(self) -> None:
        pass


class Crash(BaseException):
    """The inbox's process dying where the test says."""


# -- exactly once ----------------------------------------------------------------------------


async def test_a_batch_s_effects_and_versions_commit_together_and_duplicates_change_nothing(
    receiver: facta.AsyncEventStore,
) -> None:
    first, second = paid("order-1", 10, 20, 30), paid("order-2", 5)
    source = Queue(first[0], second[0], first[1], first[0], first[2], second[0], first[1])
    async with Inbox(receiver, Ledger(), source, name="ledger", batch_size=4) as inbox:
        assert await inbox.catch_up(idle=0) == 4
        assert inbox.duplicates == 3
    assert await ledger(receiver) == [
        ("order-1", 1, 10),
        ("order-2", 1, 5),
        ("order-1", 2, 20),
        ("order-1", 3, 30),
    ]


async def test_a_crash_after_the_commit_and_before_the_acknowledgement_applies_nothing_twice(
    receiver: facta.AsyncEventStore,
) -> None:
    messages = paid("order-1", 1, 2, 3)
    source = Queue(*messages)
    source.crash_on_ack = True
    with pytest.raises(Crash):
        async with Inbox(receiver, Ledger(), source, name="ledger") as inbox:
            await inbox.catch_up(idle=0)
    assert source.acknowledged == []
    source = Queue(*messages, *paid("order-1", 4, first=4))  # the broker delivers them again
    async with Inbox(receiver, Ledger(), source, name="ledger") as inbox:
        assert await inbox.catch_up(idle=0) == 1
        assert inbox.duplicates == 3
    assert [amount for _, _, amount in await ledger(receiver)] == [1, 2, 3, 4]


async def test_a_failing_handler_s_rows_roll_back_with_its_batch_and_the_rest_commit(
    receiver: facta.AsyncEventStore,
) -> None:
    messages = paid("order-1", 1, 2, 3) + paid("order-2", 7, 8)
    source = Queue(*messages)
    async with Inbox(receiver, Ledger(fail=[8]), source, name="ledger") as inbox:
        with pytest.raises(InboxError, match="RuntimeError: amount 8 is refused") as e:
            await inbox.catch_up(idle=0)
    assert "event 'tests.inbox.Paid'" in str(e.value)
    assert "(stream 'order-2' version 2)" in str(e.value)
    assert "it is left unacknowledged at the broker" in str(e.value)
    assert [amount for _, _, amount in await ledger(receiver)] == [1, 2, 3, 7]
    assert source.acknowledged == messages[:4]
    (status,) = [s for s in await statuses_async(receiver) if s.name == "ledger"]
    assert status.state == "failed"
    assert status.error == str(e.value)
    source = Queue(*messages[4:])
    async with Inbox(
        receiver, Ledger(fail=[8]), source, name="ledger", on_error=OnError.DEAD_LETTER
    ) as inbox:
        await inbox.catch_up(idle=0)
        (dead,) = await inbox.held()
    assert (dead.stream_id, dead.version, dead.error) == (
        "order-2",
        2,
        "RuntimeError: amount 8 is refused",
    )
    assert [amount for _, _, amount in await ledger(receiver)] == [1, 2, 3, 7]  # no half row


# -- what messages hold ----------------------------------------------------------------------


def test_each_missing_or_malformed_header_is_named() -> None:
    good = paid("order-1", 1)[0].headers
    with pytest.raises(InvalidMessage, match=r"it has no Facta-Type header$"):
        read_headers({k: v for k, v in good.items() if k != "Facta-Type"})
    broken = {
        **good,
        "Facta-Version": "0",
        "Facta-Checkpoint": "12",
        "Facta-Recorded-At": "2026-01-01T00:00:00",
        "Facta-Event-Id": "not-a-uuid",
    }
    with pytest.raises(InvalidMessage) as e:
        read_headers(broken)
    assert str(e.value) == (
        "the message is not a facta event: Facta-Event-Id is 'not-a-uuid', not a UUID; "
        "Facta-Version is '0', not a version (an integer >= 1, or < 0 for a lifecycle marker); "
        "Facta-Checkpoint is '12', not a "
        "checkpoint (transaction:position); Facta-Recorded-At is '2026-01-01T00:00:00', not an "
        "ISO 8601 time with a time zone"
    )
    received = read_headers(good)
    assert (received.stream_id, received.version, received.correlation_id) == (
        "order-1",
        1,
        "correlated",
    )


async def test_an_event_the_receiver_cannot_decode_stops_the_inbox_before_it(
    receiver: facta.AsyncEventStore,
) -> None:
    newer = delivery(stored("order-1", 2, Paid(2), schema_version=9))
    messages = [paid("order-1", 1)[0], newer, paid("order-1", 3, first=3)[0]]
    source = Queue(*messages)
    async with Inbox(receiver, Ledger(), source, name="ledger") as inbox:
        with pytest.raises(InboxError, match="schema version 9") as e:
            await inbox.catch_up(idle=0)
    assert "(stream 'order-1' version 2)" in str(e.value)
    assert source.acknowledged == messages[:1]
    source = Queue(*messages[1:])
    async with Inbox(
        receiver, Ledger(), source, name="ledger", on_error=OnError.DEAD_LETTER
    ) as inbox:
        assert await inbox.catch_up(idle=0) == 1
        (dead,) = await inbox.held()
    assert dead.version == 2
    assert dead.error is not None
    assert "schema version 9" in dead.error
    assert dead.data == newer.data
    assert await ledger(receiver) == [("order-1", 1, 1), ("order-1", 3, 3)]


async def test_events_of_types_the_projection_does_not_handle_only_move_their_stream_on(
    receiver: facta.AsyncEventStore,
) -> None:
    foreign = delivery(stored("order-1", 2, {"x": 1}, type_name="elsewhere.Shipped"))
    source = Queue(paid("order-1", 1)[0], foreign, paid("order-1", 3, first=3)[0])
    async with Inbox(receiver, Ledger(), source, name="ledger") as inbox:
        assert await inbox.catch_up(idle=0) == 3  # version 3 is next: nothing parked
        assert inbox.parked == 0
    assert await ledger(receiver) == [("order-1", 1, 1), ("order-1", 3, 3)]


async def test_the_receiving_store_s_upcasters_apply_to_what_arrives(tmp_path: Path) -> None:
    casts = facta.Upcasters()
    casts.register("tests.inbox.Refunded", 1, lambda data: {**data, "reason": "unknown"})
    old = delivery(stored("order-1", 1, {"amount": 4}, type_name="tests.inbox.Refunded"))
    codec = facta.Codec(upcasters=casts)
    async with facta.connect_async(f"sqlite:///{tmp_path / 'r.db'}", codec=codec) as store:
        received: list[RecordedEvent] = []

        class Refunds(Projection[Any]):
            name = "refunds"

            @handles(Refunded)
            def refunded(self, event: RecordedEvent, connection: Any) -> None:
                received.append(event)

        async with Inbox(store, Refunds(), Queue(old), name="refunds") as inbox:
            assert await inbox.catch_up(idle=0) == 1
    (event,) = received
    assert event.data == Refunded(4, "unknown")
    assert event.schema_version == 1  # as it was stored by the sender
    assert event.metadata.correlation_id == "correlated"
    assert event.event_id == uuid.UUID(old.headers["Facta-Event-Id"])


# -- running -------------------------------------------------------------------------------


async def test_one_inbox_runs_per_name_and_its_lock_is_a_projection_s(
    receiver: facta.AsyncEventStore,
) -> None:
    async with Inbox(receiver, Ledger(), Queue(), name="ledger"):
        with pytest.raises(ProjectionLocked, match="'ledger' is already running"):
            async with Inbox(receiver, Ledger(), Queue(), name="ledger"):
                pass
        (status,) = [s for s in await statuses_async(receiver) if s.name == "ledger"]
        assert (status.state, status.checkpoint, status.lag) == ("running", Checkpoint(), 0)
    (status,) = [s for s in await statuses_async(receiver) if s.name == "ledger"]
    assert status.state == "stopped"


async def test_run_waits_out_an_unavailable_broker_and_stops_when_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = Queue(*paid("order-1", 1, 2))
    source.down = 2
    async with facta.connect_async(f"sqlite:///{tmp_path / 'r.db'}") as store:
        inbox = Inbox(store, Ledger(), source, name="ledger", poll_interval=0.01, max_backoff=0.05)
        async with inbox:
            with caplog.at_level(logging.WARNING, logger="facta.publishing"):
                running = asyncio.create_task(inbox.run())
                for _ in range(500):
                    if inbox.applied == 2:
                        break
                    await asyncio.sleep(0.01)
                inbox.stop()
                await asyncio.wait_for(running, 10)
        assert await ledger(store) == [("order-1", 1, 1), ("order-1", 2, 2)]
    warnings = [r.getMessage() for r in caplog.records if r.name == "facta.publishing"]
    assert len(warnings) == 2
    assert "inbox 'ledger': the broker is unavailable (connection refused); retrying" in warnings[0]
    assert source.opened == 3  # opened, then again after each back-off


@pytest.mark.postgres
async def test_an_inbox_whose_connection_is_killed_takes_its_lock_again_and_goes_on(
    postgres_url: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = Queue(*paid("order-1", 1, 2))
    async with facta.connect_async(f"{postgres_url}?schema={pg_schema}") as store:
        inbox = Inbox(store, Ledger(), source, name="ledger", batch_size=1, max_backoff=0.05)
        async with inbox:
            assert await inbox.catch_up(idle=0) == 2
            connection = inbox._checkpoints._conn  # type: ignore[union-attr]
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (connection.info.backend_pid,))
            source.waiting += paid("order-1", 2, 3, first=2)
            with caplog.at_level(logging.WARNING, logger="facta.publishing"):
                assert await inbox.catch_up(idle=0) == 1
        assert await ledger(store) == [("order-1", 1, 1), ("order-1", 2, 2), ("order-1", 3, 3)]
    assert "inbox 'ledger': the store failed" in caplog.text


async def test_bad_arguments_are_refused_when_the_inbox_is_made(
    receiver: facta.AsyncEventStore,
) -> None:
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        Inbox(receiver, Ledger(), Queue(), name="ledger", batch_size=0)
    with pytest.raises(ValueError, match="name must be 1-100 letters"):
        Inbox(receiver, Ledger(), Queue(), name="no spaces")
    with pytest.raises(TypeError, match="not a list"):
        Inbox(receiver, Ledger(), [], name="ledger")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Projection or AsyncProjection, not a str"):
        Inbox(receiver, "ledger", Queue(), name="ledger")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'sideways' is not a valid Gaps"):
        Inbox(receiver, Ledger(), Queue(), name="ledger", gaps="sideways")  # type: ignore[arg-type]
    inbox = Inbox(receiver, Ledger(), Queue(), name="ledger", gaps="refuse")  # type: ignore[arg-type]
    assert inbox.gaps is Gaps.REFUSE
    with pytest.raises(StoreError, match="inbox 'ledger' is not open"):
        await inbox.catch_up()


class Bare(AsyncCheckpoints):
    """A third-party backend's checkpoints written before inboxes existed."""

    async def open(self, wait: bool, poll_interval: float) -> None: ...
    async def close(self) -> None: ...
    def transaction(self) -> Any:
        return contextlib.nullcontext()

    async def start(self, state: str, types: tuple[str, ...]) -> Checkpoint:
        return Checkpoint()

    async def save(self, connection: Any, before: Checkpoint, after: Checkpoint) -> None: ...
    async def reset(self, connection: Any) -> None: ...
    async def park(self, connection: Any, event: RecordedEvent, error: str) -> None: ...
    async def dead_letters(self) -> list[DeadLetter]:
        return []

    async def finish(self, state: str, error: str | None = None) -> None: ...
    async def lag(self, after: Checkpoint, types: tuple[str, ...]) -> int:
        return 0


async def test_a_backend_that_keeps_no_inbox_state_says_so() -> None:
    with pytest.raises(StoreError, match="Bare keeps no inbox state, so inbox 'x' cannot run"):
        await Bare("x").held()
