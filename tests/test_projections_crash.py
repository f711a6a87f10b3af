"""A runner killed (SIGKILL, a real subprocess) at random points leaves nothing applied twice.

Run as a script, this file is the worker: it catches the projection up and exits.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import facta
from facta.projections import Projection, ProjectionRunner, handles, statuses

EVENTS = 800  # handled events in the log (plus as many of a type the projection ignores)
KILLS = 5


@facta.event("test.projections_crash.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


@facta.event("test.projections_crash.Noted")
@dataclass(frozen=True)
class Noted:
    text: str


class Ledger(Projection[Any]):
    """Balances per stream, and one row per applied event: a duplicate would show."""

    name = "ledger"

    def __init__(self, placeholder: str) -> None:
        self.mark = placeholder

    def setup(self, db: Any) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS balances (stream_id TEXT PRIMARY KEY, total BIGINT)")
        db.execute("CREATE TABLE IF NOT EXISTS applied (position BIGINT NOT NULL)")

    def reset(self, db: Any) -> None:
        db.execute("DELETE FROM balances")
        db.execute("DELETE FROM applied")

    @handles(Deposited)
    def deposited(self, event: facta.RecordedEvent, db: Any) -> None:
        m = self.mark
        db.execute(
            f"INSERT INTO balances VALUES ({m}, {m}) ON CONFLICT (stream_id)"
            " DO UPDATE SET total = balances.total + excluded.total",
            (event.stream_id, event.data.amount),
        )
        db.execute(f"INSERT INTO applied VALUES ({m})", (event.position,))
        time.sleep(0.0002)  # widen the window in which a kill lands inside a batch


def placeholder(url: str) -> str:
    return "?" if url.startswith("sqlite") else "%s"


def work(url: str) -> None:
    """The worker: catch the ledger up, in small batches, waiting for a dead runner's lock."""
    with (
        facta.connect(url) as store,
        ProjectionRunner(
            store, Ledger(placeholder(url)), batch_size=7, wait=True, poll_interval=0.02
        ) as runner,
    ):
        print("ready", flush=True)
        runner.catch_up()


def read_model(url: str) -> tuple[list[tuple[Any, ...]], int, list[tuple[Any, ...]]]:
    """(balances, events applied, positions applied more than once)."""
    queries = (
        "SELECT stream_id, total FROM balances ORDER BY stream_id",
        "SELECT count(*) FROM applied",
        "SELECT position, count(*) FROM applied GROUP BY position HAVING count(*) > 1",
    )
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            rows = [db.execute(query).fetchall() for query in queries]
    else:
        with facta.connect(url) as store, store.recorder.transaction() as conn:
            rows = [conn.execute(query).fetchall() for query in queries]
    return rows[0], rows[1][0][0], rows[2]


def fill(url: str) -> None:
    """EVENTS deposits over 17 streams, each followed by an event the ledger ignores."""
    rng = random.Random(7)
    with facta.connect(url) as store:
        for start in range(0, EVENTS, 17):
            store.append_many(
                [
                    facta.StreamAppend(
                        f"account-{n}", [Deposited(rng.randint(1, 100)), Noted("")], facta.ANY
                    )
                    for n in range(min(17, EVENTS - start))
                ]
            )
        if not url.startswith("sqlite"):  # until readers see every event (other sessions' open
            for _ in range(3000):  # transactions on a shared server hold them back a moment)
                if not store.recorder.reader_lag().held_back:  # type: ignore[attr-defined]
                    break
                time.sleep(0.01)


def held_back(url: str) -> str:
    """On PostgreSQL, whether an old open transaction elsewhere hides events from readers."""
    if url.startswith("sqlite"):
        return "sqlite"
    with facta.connect(url) as store:
        return f"readers are held back: {store.recorder.reader_lag()}"  # type: ignore[attr-defined]


def lag(url: str) -> int:
    with facta.connect(url) as store:
        (status,) = statuses(store)
        return status.lag


def crash_repeatedly(url: str, rng: random.Random) -> int:
    """Start a worker and SIGKILL it at a random moment, KILLS times; then let one finish.

    Returns how many kills left the ledger part way (neither at the start nor done).
    """
    midway = 0
    for _ in range(KILLS):
        worker = subprocess.Popen(
            [sys.executable, __file__, url], stdout=subprocess.PIPE, text=True
        )
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.2))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        worker.stdout.close()
        midway += 0 < lag(url) < EVENTS
    finished = subprocess.run([sys.executable, __file__, url], capture_output=True, check=False)
    assert finished.returncode == 0, finished.stderr
    return midway


def check_killed_runs_end_as_a_clean_rebuild(url: str) -> None:
    seed = random.randrange(2**32)
    fill(url)
    midway = crash_repeatedly(url, random.Random(seed))
    balances, applied, twice = read_model(url)
    assert (applied, twice) == (EVENTS, []), f"seed {seed}; {held_back(url)}"
    with facta.connect(url) as store, ProjectionRunner(store, Ledger(placeholder(url))) as runner:
        assert runner.rebuild() == EVENTS
    assert read_model(url) == (balances, EVENTS, []), f"seed {seed}"
    assert midway > 0, f"seed {seed}: no kill landed during the catch-up"


def test_a_sqlite_runner_killed_at_random_points_ends_as_a_clean_rebuild(tmp_path: Path) -> None:
    check_killed_runs_end_as_a_clean_rebuild(f"sqlite:///{tmp_path / 'events.db'}")


@pytest.mark.postgres
def test_a_postgres_runner_killed_at_random_points_ends_as_a_clean_rebuild(
    postgres_url: str, pg_schema: str
) -> None:
    check_killed_runs_end_as_a_clean_rebuild(f"{postgres_url}?schema={pg_schema}")


if __name__ == "__main__":
    work(sys.argv[1])
