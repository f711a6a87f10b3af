# WARNING: generated from src/facta/checking_async.py by tools/gen_sync.py; do not edit.
"""``facta check``: read every stored event and snapshot with the current code, write nothing.

Upcasters, event classes and aggregate classes come from the imported application modules:
what fails here would fail a load, a projection or a relay. Every failure is reported with its
place; the check never stops at the first one. It begins with the database's own check of
its files (``recorder.check_integrity()``): a damaged file fails the check even where every
row still decodes. The async module is the source; the sync one is
generated from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from facta.aggregate import Aggregate
from facta.check_report import (
    CheckFailure,
    CheckReport,
    SnapshotChecker,
    database_failure,
    event_failure,
)
from facta.errors import StoreError
from facta.events import Checkpoint
from facta.snapshots import SNAPSHOT_CANDIDATES
from facta.store import DEFAULT_BATCH_SIZE, EventStore
from facta.upcasting import Upcasters

__all__ = ["check_store"]


def check_store(
    store: EventStore,
    aggregates: Iterable[type[Aggregate]] | None = None,
    *,
    snapshot_upcasters: Upcasters | None = None,
    on_failure: Callable[[CheckFailure], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> CheckReport:
    """Check the database's integrity, then decode every event in the store's global log and
    each stream's newest snapshots.

    Events decode with the store's codec (registered classes and upcasters); snapshots with
    ``aggregates`` (default: every imported ``Aggregate`` subclass that takes snapshots) and
    ``snapshot_upcasters``. Each failure goes to ``on_failure`` as it is found; the report
    counts them all and keeps the first ones. ``progress(done, total)`` is called as the check
    goes (one unit per stream for its snapshots, one per event). Memory stays bounded whatever
    the store's size. Each problem the database reports is a failure of kind ``"database"``;
    when there are some and reading then fails, that is one more, and the check ends there.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    checker = SnapshotChecker(aggregates, snapshot_upcasters)
    report = CheckReport()

    def fail(failure: CheckFailure) -> None:
        report.add(failure)
        if on_failure is not None:
            on_failure(failure)

    recorder = store.recorder
    for problem in recorder.check_integrity():
        fail(database_failure(recorder.location, problem))
    try:
        _read(store, checker, report, fail, progress, batch_size)
    except StoreError as e:
        if not report.database_failures:
            raise
        why = str(e).removeprefix(f"{recorder.location}: ")
        fail(database_failure(recorder.location, f"reading stopped: {why}"))
    return report


def _read(
    store: EventStore,
    checker: SnapshotChecker,
    report: CheckReport,
    fail: Callable[[CheckFailure], None],
    progress: Callable[[int, int], None] | None,
    batch_size: int,
) -> None:
    """Read and decode every snapshot and event, as :func:`check_store` says."""

    def advance(done: int) -> None:
        if progress is not None:
            progress(done, max(total, done))

    total = 0  # first pass: how much there is to do, for the progress callback
    for _, version in store.streams(batch_size=batch_size):
        total += 1 + version

    done = 0
    for stream_id, _ in store.streams(batch_size=batch_size):
        report.streams += 1
        snapshots = store.read_snapshots(stream_id, SNAPSHOT_CANDIDATES)
        keys = store.fetch_snapshot_keys(snapshots)  # of sealed personal fields
        for snapshot in snapshots:
            report.snapshots += 1
            checked, failure = checker.check(snapshot, keys)
            if not checked:
                report.unchecked_snapshots += 1
            if failure is not None:
                fail(failure)
        done += 1
        if done % batch_size == 0:
            advance(done)
    advance(done)

    decode = store.decode  # decoding, exactly as every read of the store does it
    checkpoint = Checkpoint()
    while True:  # the recorder's rows: a row that does not decode is reported, not raised
        rows = store.recorder.read_all(checkpoint, None, batch_size)
        keys = store.fetch_keys(rows)  # of sealed personal fields
        for row in rows:
            try:
                decode(row, keys)
            except Exception as e:
                fail(event_failure(row, e))
        report.events += len(rows)
        done += len(rows)
        advance(done)
        if len(rows) < batch_size:
            return
        checkpoint = rows[-1].checkpoint
