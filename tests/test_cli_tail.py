"""``facta tail``: events printed live as other processes commit them, until SIGTERM."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import facta


@facta.event("tests.cli_tail.Rang")
@dataclass(frozen=True)
class Rang:
    n: int


def lines_until(process: subprocess.Popen[str], wanted: int, seconds: float = 60.0) -> list[str]:
    """The process's stdout lines, once ``wanted`` of them arrived (or the time is up).

    60 s: on PostgreSQL an event reaches the log only once every older transaction of the
    database has ended, and other writers may hold it back for a while.
    """
    assert process.stdout is not None
    stdout = process.stdout
    arrived: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            arrived.put(line)

    threading.Thread(target=pump, daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while len(lines) < wanted and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            lines.append(arrived.get(timeout=0.1).rstrip("\n"))
    return lines


def tail(url: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "facta", "tail", url, "--poll-interval", "0.05", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def follow(url: str, readable: Callable[[facta.EventStore], None]) -> None:
    with facta.connect(url) as store:
        store.append("bell-1", [Rang(1)], facta.ANY)  # before tail starts: not shown
        readable(store)  # in the log before tail looks for its end
    process = tail(url)
    try:
        assert process.stderr is not None
        assert "following the log after" in process.stderr.readline()  # tail is at the end
        with facta.connect(url) as store:
            for n in (2, 3):
                store.append("bell-1", [Rang(n)], facta.ANY)  # committed while tail waits
                time.sleep(0.1)
        lines = lines_until(process, 3)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert lines[0].split()[:2] == ["CHECKPOINT", "STREAM"]
    assert [line.split()[1:3] for line in lines[1:]] == [["bell-1", "2"], ["bell-1", "3"]]
    assert lines[1].endswith('{"n":2}')
    assert lines[2].endswith('{"n":3}')
    assert "stopped after" in err


def test_tail_prints_events_committed_by_another_process_on_sqlite(
    tmp_path: Path, readable: Callable[[facta.EventStore], None]
) -> None:
    follow(f"sqlite:///{tmp_path / 'bells.db'}", readable)


@pytest.mark.postgres
def test_tail_prints_events_committed_by_another_process_on_postgres(
    postgres_url: str, pg_schema: str, readable: Callable[[facta.EventStore], None]
) -> None:
    follow(f"{postgres_url}?schema={pg_schema}", readable)


def test_tail_after_zero_starts_at_the_beginning_of_the_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bells.db'}"
    with facta.connect(url) as store:
        store.append("bell-1", [Rang(1), Rang(2)], facta.ANY)
    process = tail(url, "--after", "0")
    try:
        lines = lines_until(process, 3)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert [line.split()[:3] for line in lines[1:]] == [["1", "bell-1", "1"], ["2", "bell-1", "2"]]


def test_tail_on_a_place_without_a_store_says_so(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "facta", "tail", f"sqlite:///{tmp_path / 'none.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "not a facta store" in finished.stderr
    assert not (tmp_path / "none.db").exists()
