"""Snapshots: taken after saves from memory, never trusted blindly on load.

Corruption is done in the real database, behind the store's back: SQLite through sqlite3,
PostgreSQL through psycopg, the memory store through its dict.
"""

from __future__ import annotations

import gc
import itertools
import logging
import sqlite3
import time
import urllib.parse
import weakref
import zlib
from contextlib import closing
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import msgspec
import pytest

import facta
from facta import AsyncRepository, SnapshotError, Upcasters
from facta.codec import ZLIB
from facta.snapshots import SnapshotCodec, SnapshotRecord, checksum


@facta.event("test_snapshots.Added")
@dataclass(frozen=True)
class Added:
    amount: int


@dataclass
class TallyState:
    total: int
    count: int


class Tally(facta.Aggregate):
    """Snapshots every 10 events; ``replayed`` counts the events applied by the last load."""

    type_name = "test_snapshots.Tally"
    snapshot_every: ClassVar[int | None] = 10
    snapshot_type = TallyState

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.total = 0
        self.count = 0
        self.replayed = 0

    def add(self, *amounts: int) -> None:
        for amount in amounts:
            self.record(Added(amount))

    def apply(self, event: object) -> None:
        if isinstance(event, Added):
            self.total += event.amount
            self.count += 1
            self.replayed += 1

    def snapshot_state(self) -> TallyState:
        return TallyState(self.total, self.count)

    def restore_state(self, state: TallyState) -> None:
        if state.count < 0:
            raise ValueError("a negative count")
        self.total, self.count = state.total, state.count


async def tally_with(store: facta.AsyncEventStore, *saves: int, stream_id: str = "t-1") -> Tally:
    """A tally saved once per item of ``saves``, each time with that many events of 1..n."""
    repository = AsyncRepository(store, Tally)
    tally = Tally(stream_id)
    for size in saves:
        tally.add(*range(1, size + 1))
        await repository.save(tally)
    return tally


def triangle(*saves: int) -> int:
    return sum(n * (n + 1) // 2 for n in saves)


async def snapshot_versions(store: facta.AsyncEventStore, stream_id: str = "t-1") -> list[int]:
    return [s.version for s in await store.read_snapshots(stream_id, 100)]


async def change_snapshot(
    store: facta.AsyncEventStore, url: str, version: int, **columns: Any
) -> None:
    """Change columns of the stored snapshot of stream "t-1" at ``version`` in the database."""
    if url.startswith("memory:"):
        await store.recorder.write_snapshot((await stored(store, version))._replace(**columns))
        return
    sets = ", ".join(f"{name} = %s" for name in columns)
    where = "WHERE stream_id = 't-1' AND version = %s"
    values = (*columns.values(), version)
    if url.startswith("sqlite:"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db, db:
            sql = f"UPDATE facta_snapshots SET {sets} {where}".replace("%s", "?")
            assert db.execute(sql, values).rowcount == 1
        return
    import psycopg

    parts = urllib.parse.urlsplit(url)
    schema = urllib.parse.parse_qs(parts.query)["schema"][0]
    with psycopg.connect(parts._replace(query="").geturl(), autocommit=True) as conn:
        sql = f'UPDATE "{schema}".facta_snapshots SET {sets} {where}'
        assert conn.execute(sql.encode(), values).rowcount == 1  # bytes: a query of our making


async def stored(store: facta.AsyncEventStore, version: int) -> SnapshotRecord:
    (record,) = [s for s in await store.read_snapshots("t-1", 100) if s.version == version]
    return record


def flipped(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# -- taking snapshots ---------------------------------------------------------------------------


async def test_save_that_reaches_snapshot_every_writes_a_snapshot_at_the_saved_version(
    async_store: facta.AsyncEventStore,
) -> None:
    await tally_with(async_store, 4, 6)

    (record,) = await async_store.read_snapshots("t-1")
    assert (record.version, record.aggregate_type, record.schema_version) == (
        10,
        "test_snapshots.Tally",
        1,
    )
    assert msgspec.json.decode(record.state) == {"total": triangle(4, 6), "count": 10}
    assert record.checksum == checksum(record.state)


async def test_save_that_crosses_several_multiples_writes_one_snapshot(
    async_store: facta.AsyncEventStore,
) -> None:
    await tally_with(async_store, 25)

    assert await snapshot_versions(async_store) == [25]


async def test_saves_that_stay_between_multiples_write_no_snapshot(
    async_store: facta.AsyncEventStore,
) -> None:
    await tally_with(async_store, 3, 6, 11)  # versions 3, 9 and 20: crosses 10 and 20 once

    assert await snapshot_versions(async_store) == [20]


async def test_snapshot_is_taken_from_memory_without_reading_the_stream(
    async_store: facta.AsyncEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stream was read")

    monkeypatch.setattr(async_store.recorder, "read_stream", no_reading)
    monkeypatch.setattr(async_store.recorder, "replay_stream", no_reading)

    await tally_with(async_store, 10)

    assert await snapshot_versions(async_store) == [10]


async def test_failed_snapshot_write_never_fails_the_save_and_is_logged(
    async_store: facta.AsyncEventStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(snapshot: SnapshotRecord) -> None:
        raise facta.StoreError("disk full")

    monkeypatch.setattr(async_store, "write_snapshot", broken)

    tally = await tally_with(async_store, 12)

    assert (tally.version, await async_store.stream_version("t-1")) == (12, 12)
    (log,) = [r for r in caplog.records if r.name == "facta.snapshots"]
    assert log.levelno == logging.WARNING
    assert "could not write a snapshot of stream 't-1' at version 12" in log.getMessage()
    assert log.exc_info is not None
    assert "disk full" in str(log.exc_info[1])


async def test_snapshot_state_of_the_wrong_type_is_raised_once_the_events_are_saved(
    async_store: facta.AsyncEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Tally, "snapshot_state", lambda self: "not a TallyState")
    repo = facta.AsyncRepository(async_store, Tally)
    tally = Tally("t-1")
    for n in range(10):
        tally.add(n)

    with pytest.raises(facta.SnapshotError, match="returned str, not its snapshot_type TallyState"):
        await repo.save(tally)

    assert tally.version == 10  # the events were saved; only the snapshot was refused
    assert await async_store.stream_version("t-1") == 10
    assert await snapshot_versions(async_store) == []


async def test_failed_snapshots_keep_no_reference_to_the_aggregate(
    async_store: facta.AsyncEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(snapshot: SnapshotRecord) -> None:
        raise facta.StoreError("disk full")

    monkeypatch.setattr(async_store, "write_snapshot", broken)
    monkeypatch.setattr(logging.getLogger("facta.snapshots"), "disabled", True)  # caplog keeps all

    tally = await tally_with(async_store, 10, 10)
    gone = weakref.ref(tally)
    del tally
    gc.collect()

    assert gone() is None


# -- loading from snapshots ---------------------------------------------------------------------


async def test_load_starts_at_the_newest_snapshot_and_applies_only_the_events_after_it(
    async_store: facta.AsyncEventStore,
) -> None:
    await tally_with(async_store, 10, 10, 5)

    tally = await AsyncRepository(async_store, Tally).load("t-1")

    assert (tally.total, tally.count, tally.version) == (triangle(10, 10, 5), 25, 25)
    assert tally.replayed == 5


async def test_load_of_a_version_uses_a_snapshot_at_or_before_it(
    async_store: facta.AsyncEventStore,
) -> None:
    await tally_with(async_store, 10, 10, 10)

    tally = await AsyncRepository(async_store, Tally).load("t-1", version=25)

    assert (tally.total, tally.version, tally.replayed) == (triangle(10, 10, 5), 25, 5)


async def test_load_that_replays_snapshot_every_events_writes_a_snapshot(
    async_store: facta.AsyncEventStore,
) -> None:
    await async_store.append("t-1", [Added(1)] * 15, facta.ANY)  # written without a repository

    first = await AsyncRepository(async_store, Tally).load("t-1")
    second = await AsyncRepository(async_store, Tally).load("t-1")

    assert (first.replayed, second.replayed, second.total) == (15, 0, 15)
    assert await snapshot_versions(async_store) == [15]


async def test_load_that_replays_fewer_events_writes_no_snapshot(
    async_store: facta.AsyncEventStore,
) -> None:
    await async_store.append("t-1", [Added(1)] * 9, facta.ANY)

    await AsyncRepository(async_store, Tally).load("t-1")

    assert await snapshot_versions(async_store) == []


async def test_aggregate_without_snapshot_every_neither_reads_nor_writes_snapshots(
    async_store: facta.AsyncEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Plain(Tally):
        snapshot_every = None

    async def no_snapshots(*args: object, **kwargs: object) -> None:
        raise AssertionError("snapshots were used")

    monkeypatch.setattr(async_store, "read_snapshots", no_snapshots)
    monkeypatch.setattr(async_store, "write_snapshot", no_snapshots)
    repository = AsyncRepository(async_store, Plain)
    plain = Plain("t-1")
    plain.add(*[1] * 30)
    await repository.save(plain)

    assert (await repository.load("t-1")).replayed == 30


def test_sync_repository_takes_and_loads_snapshots(store: facta.EventStore) -> None:
    repository = facta.Repository(store, Tally)
    tally = Tally("t-1")
    tally.add(*range(1, 13))
    repository.save(tally)

    loaded = repository.load("t-1")

    assert [s.version for s in store.read_snapshots("t-1")] == [12]
    assert (loaded.total, loaded.version, loaded.replayed) == (triangle(12), 12, 0)


# -- snapshots that must not be trusted ---------------------------------------------------------


async def load_after_change(
    store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture, **columns: Any
) -> Tally:
    """Stream "t-1" with snapshots at 10 and 20 and events to 23; the one at 20 changed as
    given; the aggregate loaded, after checking that the skip was logged."""
    await tally_with(store, 10, 10, 3)
    await change_snapshot(store, url, 20, **columns)

    tally = await AsyncRepository(store, Tally).load("t-1")

    warnings = [r.getMessage() for r in caplog.records if r.name == "facta.snapshots"]
    assert len(warnings) == 1
    assert "snapshot of stream 't-1' at version 20: " in warnings[0]
    assert (tally.total, tally.count, tally.version) == (triangle(10, 10, 3), 23, 23)
    return tally


async def test_snapshot_with_a_corrupted_state_byte_is_skipped_for_an_older_one(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await tally_with(async_store, 10, 10, 3)
    record = await stored(async_store, 20)
    await change_snapshot(async_store, url, 20, state=flipped(record.state, 3))

    tally = await AsyncRepository(async_store, Tally).load("t-1")

    assert (tally.total, tally.version, tally.replayed) == (triangle(10, 10, 3), 23, 13)
    assert "snapshot of stream 't-1' at version 20: " in caplog.text
    assert "checksum mismatch" in caplog.text


async def test_snapshot_with_a_changed_checksum_is_skipped(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    tally = await load_after_change(async_store, url, caplog, checksum=12345)

    assert tally.replayed == 13  # from the snapshot at 10


async def test_snapshot_of_a_schema_version_without_upcaster_is_skipped(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await load_after_change(async_store, url, caplog, schema_version=2)

    assert "stored at version 2, newer than version 1 in the code" in caplog.text


async def test_snapshot_that_does_not_decode_is_skipped(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = b'{"total": "many", "count": 20}'

    await load_after_change(async_store, url, caplog, state=state, checksum=checksum(state))

    assert "does not decode into TallyState" in caplog.text


async def test_snapshot_that_is_not_json_is_skipped(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = b"\x00garbage"

    await load_after_change(async_store, url, caplog, state=state, checksum=checksum(state))


async def test_compressed_snapshot_that_does_not_decompress_is_skipped(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = b"not zlib"

    await load_after_change(
        async_store, url, caplog, state=state, checksum=checksum(state), encoding=ZLIB
    )

    assert "the stored state is corrupt" in caplog.text


async def test_snapshot_of_an_unknown_encoding_is_skipped(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await load_after_change(async_store, url, caplog, encoding=7)

    assert "unknown encoding 7" in caplog.text


async def test_snapshot_that_restore_state_rejects_is_skipped(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = b'{"total": 0, "count": -1}'

    await load_after_change(async_store, url, caplog, state=state, checksum=checksum(state))

    assert "Tally.restore_state() failed: ValueError: a negative count" in caplog.text


async def test_snapshot_of_another_aggregate_type_is_skipped(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await load_after_change(async_store, url, caplog, aggregate_type="test_snapshots.Other")

    assert "written for another aggregate type than 'test_snapshots.Tally'" in caplog.text


async def test_load_after_a_skipped_snapshot_writes_a_fresh_one(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await load_after_change(async_store, url, caplog, checksum=1)

    again = await AsyncRepository(async_store, Tally).load("t-1")

    assert await snapshot_versions(async_store) == [23, 20, 10]
    assert (again.total, again.replayed) == (triangle(10, 10, 3), 0)


async def test_fresh_snapshot_replaces_an_unusable_one_at_the_same_version(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await tally_with(async_store, 10, 10)
    await change_snapshot(async_store, url, 20, checksum=1)

    await AsyncRepository(async_store, Tally).load("t-1")

    fresh = await stored(async_store, 20)
    assert fresh.checksum == checksum(fresh.state)


async def test_load_replays_the_whole_stream_when_no_snapshot_is_usable(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await tally_with(async_store, 10, 10, 3)
    await change_snapshot(async_store, url, 20, checksum=1)
    await change_snapshot(async_store, url, 10, checksum=1)

    tally = await AsyncRepository(async_store, Tally).load("t-1")

    assert (tally.total, tally.version, tally.replayed) == (triangle(10, 10, 3), 23, 23)
    assert len([r for r in caplog.records if r.name == "facta.snapshots"]) == 2


async def test_load_replays_the_stream_when_the_snapshots_cannot_be_read(
    async_store: facta.AsyncEventStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await tally_with(async_store, 10, 3)

    async def broken(
        stream_id: str, limit: int = 3, *, fresh: object = False
    ) -> list[SnapshotRecord]:
        raise facta.StoreError("no snapshots table")

    monkeypatch.setattr(async_store, "read_snapshots", broken)

    tally = await AsyncRepository(async_store, Tally).load("t-1")

    assert (tally.total, tally.replayed) == (triangle(10, 3), 13)
    assert "could not read the snapshots of stream 't-1'" in caplog.text


async def test_load_considers_at_most_three_snapshots(
    async_store: facta.AsyncEventStore, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await tally_with(async_store, 10, 10, 10, 10)
    for version in (40, 30, 20):
        await change_snapshot(async_store, url, version, checksum=1)

    tally = await AsyncRepository(async_store, Tally).load("t-1")

    assert (tally.total, tally.replayed) == (triangle(10, 10, 10, 10), 40)


async def test_a_snapshot_older_than_the_three_kept_is_not_kept(
    async_store: facta.AsyncEventStore,
) -> None:
    def record(version: int) -> SnapshotRecord:
        state = b'{"total":0,"count":0}'
        return SnapshotRecord(
            "s-old", version, "test_snapshots.Tally", 1, 0, checksum(state), state
        )

    for version in (40, 30, 20, 10):
        await async_store.write_snapshot(record(version))

    kept = await async_store.read_snapshots("s-old", limit=10)
    assert [snapshot.version for snapshot in kept] == [40, 30, 20]


# -- snapshot schema versions and upcasters -----------------------------------------------------


@dataclass
class TallyStateV3:
    sum: int
    count: int
    mean: float


class TallyV3(Tally):
    """The same aggregate type, with its snapshot state changed twice since version 1."""

    type_name = "test_snapshots.Tally"
    snapshot_version = 3
    snapshot_type = TallyStateV3  # type: ignore[assignment]

    def snapshot_state(self) -> TallyStateV3:  # type: ignore[override]
        return TallyStateV3(self.total, self.count, self.total / max(self.count, 1))

    def restore_state(self, state: TallyStateV3) -> None:  # type: ignore[override]
        self.total, self.count = state.sum, state.count


def v3_steps() -> Upcasters:
    steps = Upcasters("snapshot_upcaster")
    steps.register("test_snapshots.Tally", 1, lambda s: {"sum": s["total"], "count": s["count"]})
    steps.register("test_snapshots.Tally", 2, lambda s: {**s, "mean": s["sum"] / s["count"]})
    return steps


async def test_snapshot_upcaster_chain_migrates_an_older_snapshot_version(
    async_store: facta.AsyncEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    await tally_with(async_store, 10, 2)  # a version 1 snapshot at 10

    tally = await AsyncRepository(async_store, TallyV3, snapshot_upcasters=v3_steps()).load("t-1")

    assert (tally.total, tally.count, tally.replayed) == (triangle(10, 2), 12, 2)
    assert not caplog.records


async def test_snapshot_version_without_a_step_is_skipped_and_replaced(
    async_store: facta.AsyncEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    await tally_with(async_store, 10)
    steps = Upcasters("snapshot_upcaster")
    steps.register("test_snapshots.Tally", 1, lambda s: {"sum": s["total"], "count": s["count"]})

    tally = await AsyncRepository(async_store, TallyV3, snapshot_upcasters=steps).load("t-1")

    assert (tally.total, tally.replayed) == (triangle(10), 10)
    assert "@snapshot_upcaster('test_snapshots.Tally', 2)" in caplog.text
    assert (await stored(async_store, 10)).schema_version == 3


async def test_snapshot_upcaster_output_that_does_not_decode_is_skipped(
    async_store: facta.AsyncEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    await tally_with(async_store, 10)
    steps = Upcasters("snapshot_upcaster")
    steps.register("test_snapshots.Tally", 1, lambda s: s, to_version=3)

    tally = await AsyncRepository(async_store, TallyV3, snapshot_upcasters=steps).load("t-1")

    assert (tally.total, tally.replayed) == (triangle(10), 10)
    assert "upcasted to schema version 3, which does not decode into TallyStateV3" in caplog.text


class Counter(Tally):
    """Tally, renamed."""

    type_name = "test_snapshots.Counter"


async def test_snapshot_of_a_renamed_aggregate_type_is_read_through_a_rename_step(
    async_store: facta.AsyncEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    await tally_with(async_store, 10)
    steps = Upcasters("snapshot_upcaster")
    steps.register("test_snapshots.Tally", 1, lambda s: s, to_type="test_snapshots.Counter")

    counters = AsyncRepository(async_store, Counter, snapshot_upcasters=steps)
    counter = await counters.load("t-1")

    assert (counter.total, counter.replayed) == (triangle(10), 0)
    assert not caplog.records
    # The stream was created as a Tally: under its new name it is still this type's own.
    counter.add(11)
    await counters.save(counter)
    assert (await counters.load("t-1")).total == triangle(11)


def test_default_snapshot_upcasters_are_extended_by_the_decorator() -> None:
    @facta.snapshot_upcaster("test_snapshots.DefaultOnly", 1)
    def step(state: dict[str, Any]) -> dict[str, Any]:
        return state

    codec = SnapshotCodec(Tally)
    assert codec.upcasters.reads("test_snapshots.DefaultOnly")


# -- the snapshot codec -------------------------------------------------------------------------


def test_large_states_are_compressed_and_restored() -> None:
    codec = SnapshotCodec(Tally, compress_above=10)
    tally = Tally("t-1")
    tally.add(*range(100))
    tally.version = 100

    record = codec.encode(tally)
    restored = codec.decode(record)

    assert record.encoding == ZLIB
    assert msgspec.json.decode(zlib.decompress(record.state)) == {"total": 4950, "count": 100}
    assert (restored.id, restored.version, restored.total, restored.count) == (
        "t-1",
        100,
        4950,
        100,
    )


def test_decode_error_names_stream_version_type_and_schema_version() -> None:
    codec = SnapshotCodec(Tally)
    record = SnapshotRecord("t-1", 10, "test_snapshots.Tally", 1, 0, 0, b"{}")

    with pytest.raises(SnapshotError) as raised:
        codec.decode(record)

    assert str(raised.value).startswith(
        "snapshot of stream 't-1' at version 10: aggregate type 'test_snapshots.Tally' "
        "schema version 1: checksum mismatch"
    )


@pytest.mark.parametrize(
    ("declarations", "message"),
    [
        ({"snapshot_type": None}, "snapshot_type must be the dataclass or msgspec.Struct"),
        ({"snapshot_type": dict}, "snapshot_type must be the dataclass or msgspec.Struct"),
        ({"snapshot_every": 0}, "snapshot_every must be None or an int >= 1"),
        ({"snapshot_version": 0}, "snapshot_version must be an int >= 1"),
    ],
)
def test_repository_refuses_a_badly_declared_snapshotted_aggregate(
    store: facta.EventStore, declarations: dict[str, Any], message: str
) -> None:
    bad = cast("type[Tally]", type("Bad", (Tally,), declarations))

    with pytest.raises(TypeError, match=message):
        facta.Repository(store, bad)


def test_repository_refuses_a_snapshotted_aggregate_without_the_state_hooks(
    store: facta.EventStore,
) -> None:
    class Bare(facta.Aggregate):
        snapshot_every = 5
        snapshot_type = TallyState

    with pytest.raises(TypeError, match="Bare is snapshotted, so it must implement snapshot_state"):
        facta.Repository(store, Bare)


# -- snapshots by the cost of a load ------------------------------------------------------------


class Cheap(Tally):
    """Saves leave it far behind its snapshots; loads that replay 4 events or more write one."""

    snapshot_every = 1000
    snapshot_after_replaying = 4


async def test_load_that_replays_snapshot_after_replaying_events_writes_a_snapshot(
    async_store: facta.AsyncEventStore,
) -> None:
    repository = AsyncRepository(async_store, Cheap)
    cheap = Cheap("t-1")
    cheap.add(1, 2, 3)
    await repository.save(cheap)
    assert (await repository.load("t-1")).replayed == 3  # below the trigger
    assert await snapshot_versions(async_store) == []
    cheap.add(4)
    await repository.save(cheap)

    first = await repository.load("t-1")
    second = await repository.load("t-1")

    assert (first.replayed, second.replayed, second.total) == (4, 0, 10)
    assert await snapshot_versions(async_store) == [4]


async def test_snapshots_by_replay_cost_keep_every_load_short_between_every_n_snapshots(
    async_store: facta.AsyncEventStore,
) -> None:
    repository = AsyncRepository(async_store, Cheap)
    cheap = Cheap("t-1")
    replayed = []
    for _ in range(20):  # update cycles of 3 events: every-N alone would replay up to 60
        cheap.add(1, 1, 1)
        await repository.save(cheap)
        cheap = await repository.load("t-1")
        replayed.append(cheap.replayed)

    assert max(replayed) < 4 + 3
    assert (cheap.version, cheap.total) == (60, 60)


async def test_load_that_takes_snapshot_after_seconds_writes_a_snapshot(
    async_store: facta.AsyncEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Slow(Tally):
        snapshot_every = None
        snapshot_after_seconds = 0.5

    await async_store.append("t-1", [Added(1)] * 3, facta.ANY)
    repository = AsyncRepository(async_store, Slow)
    await repository.load("t-1")  # quick: no snapshot
    assert await snapshot_versions(async_store) == []
    clock = itertools.count(100.0, 0.6)  # each reading 0.6 s after the one before
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))

    slow = await repository.load("t-1")

    assert (slow.replayed, await snapshot_versions(async_store)) == (3, [3])


async def test_load_that_replays_nothing_writes_no_snapshot_however_long_it_took(
    async_store: facta.AsyncEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Slow(Tally):
        snapshot_every = 2
        snapshot_after_seconds = 0.5

    repository = AsyncRepository(async_store, Slow)
    slow = Slow("t-1")
    slow.add(1, 1)
    await repository.save(slow)  # a snapshot at 2, the head
    clock = itertools.count(100.0, 1.0)
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    written = []

    async def write(record: SnapshotRecord) -> None:
        written.append(record.version)

    monkeypatch.setattr(async_store, "write_snapshot", write)
    assert (await repository.load("t-1")).replayed == 0
    assert written == []


@pytest.mark.parametrize(
    ("declarations", "message"),
    [
        ({"snapshot_after_replaying": 0}, "snapshot_after_replaying must be None or an int >= 1"),
        ({"snapshot_after_replaying": 2.5}, "snapshot_after_replaying must be None or an int"),
        ({"snapshot_after_seconds": 0}, "snapshot_after_seconds must be None or a number of"),
        ({"snapshot_after_seconds": "1"}, "snapshot_after_seconds must be None or a number of"),
    ],
)
def test_repository_refuses_a_bad_load_cost_trigger(
    store: facta.EventStore, declarations: dict[str, Any], message: str
) -> None:
    bad = cast("type[Tally]", type("Bad", (Tally,), declarations))

    with pytest.raises(TypeError, match=message):
        facta.Repository(store, bad)
