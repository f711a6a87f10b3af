"""``facta projections``: list, rebuild (with a progress bar) and run, on a SQLite file.

That listing never writes, and that run and rebuild refuse a store that does not exist, is in
test_cli_read_only.py.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import facta
import facta.projections
from facta.cli import main

# A user's module: its events and a projection, found by the CLI with --projection.
MODULE = """
import sqlite3
from dataclasses import dataclass

import facta
import facta.projections
from facta.projections import Projection, handles


@facta.event("test.projections_cli.Paid")
@dataclass(frozen=True)
class Paid:
    amount: int


class Revenue(Projection[sqlite3.Connection]):
    name = "revenue"

    def setup(self, db):
        db.execute("CREATE TABLE IF NOT EXISTS revenue (stream_id TEXT PRIMARY KEY, total INT)")

    def reset(self, db):
        db.execute("DELETE FROM revenue")

    @handles(Paid)
    def paid(self, event, db):
        if event.data.amount == 13:
            raise ValueError("unlucky amount")
        db.execute(
            "INSERT INTO revenue VALUES (?, ?) ON CONFLICT (stream_id)"
            " DO UPDATE SET total = total + excluded.total",
            (event.stream_id, event.data.amount),
        )
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A working directory with the user's module and a store of 5 payments; its URL."""
    (tmp_path / "shop_read_models.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("FACTA_URL", raising=False)
    from shop_read_models import Paid  # type: ignore[import-not-found]

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    with facta.connect(url) as store:
        for i in range(5):
            store.append(f"order-{i % 2}", [Paid(10)], facta.ANY)
    return url


def revenue(tmp_path: Path) -> dict[str, int]:
    with sqlite3.connect(tmp_path / "shop.db") as db:
        return dict(db.execute("SELECT stream_id, total FROM revenue").fetchall())


def test_a_store_without_projections_says_so(app: str) -> None:
    result = CliRunner().invoke(main, ["projections", app])
    assert (result.exit_code, result.output) == (0, "no projection has run on this store yet\n")


def test_rebuild_replays_the_log_into_the_projection_named(app: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["projections", "rebuild", app, "revenue", "-p", "shop_read_models:Revenue"]
    )
    assert result.exit_code == 0, result.output
    assert "rebuilt 'revenue' from 5 events" in result.output
    assert revenue(tmp_path) == {"order-0": 30, "order-1": 20}


def test_the_list_shows_checkpoint_lag_and_state(app: str) -> None:
    spec = ["-p", "shop_read_models:Revenue"]
    CliRunner().invoke(main, ["projections", "rebuild", app, "revenue", *spec])
    from shop_read_models import Paid

    with facta.connect(app) as store:
        store.append("order-9", [Paid(1), Paid(2)], facta.ANY)
    result = CliRunner().invoke(main, ["projections", app])
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.output.splitlines()] == [
        ["NAME", "CHECKPOINT", "LAG", "PARKED", "STATE"],
        ["revenue", "5", "2", "0", "stopped"],
    ]


def test_a_projection_the_specs_do_not_name_is_an_error(app: str) -> None:
    result = CliRunner().invoke(
        main, ["projections", "rebuild", app, "sales", "-p", "shop_read_models:Revenue"]
    )
    assert result.exit_code == 2
    assert "no projection named 'sales' among the --projection ones ('revenue')" in result.output


def test_a_spec_that_does_not_import_is_an_error(app: str) -> None:
    result = CliRunner().invoke(main, ["projections", "rebuild", app, "x", "-p", "nowhere:X"])
    assert result.exit_code == 2
    assert "--projection 'nowhere:X': No module named 'nowhere'" in result.output


def test_run_follows_the_log_and_stops_cleanly_on_sigterm(app: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "facta", "projections", "run", app, "revenue"]
    process = subprocess.Popen(
        [*command, "-p", "shop_read_models:Revenue", "--poll-interval", "0.05"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    assert process.stderr.readline() == "running 'revenue' after checkpoint 0\n"
    from shop_read_models import Paid

    with facta.connect(app) as store:
        store.append("order-7", [Paid(5)], facta.ANY)
        for _ in range(1000):
            (status,) = facta.projections.statuses(store)
            if status.lag == 0 and status.checkpoint.position == 6:
                break
            time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    assert process.wait() == 0
    assert process.stderr.read() == "stopped 'revenue' at checkpoint 6\n"
    process.stderr.close()
    assert revenue(tmp_path) == {"order-0": 30, "order-1": 20, "order-7": 5}


def test_rebuild_reads_the_url_from_facta_url(app: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["projections", "rebuild", "revenue", "-p", "shop_read_models:Revenue"],
        env={"FACTA_URL": app},
    )
    assert result.exit_code == 0, result.output
    assert revenue(tmp_path) == {"order-0": 30, "order-1": 20}


def test_rebuild_without_url_or_facta_url_is_a_usage_error(app: str) -> None:
    result = CliRunner().invoke(
        main, ["projections", "rebuild", "revenue", "-p", "shop_read_models:Revenue"]
    )
    assert result.exit_code == 2
    assert "set FACTA_URL and give NAME" in result.output


def test_a_failing_event_stops_the_rebuild_with_a_one_line_error(app: str) -> None:
    from shop_read_models import Paid

    with facta.connect(app) as store:
        store.append("order-3", [Paid(13)], facta.ANY)
    result = CliRunner().invoke(
        main, ["projections", "rebuild", app, "revenue", "-p", "shop_read_models:Revenue"]
    )
    assert result.exit_code == 2
    assert "projection 'revenue' stopped at event 'test.projections_cli.Paid'" in result.output
    assert "ValueError: unlucky amount" in result.output


def test_rebuild_with_dead_letter_parks_the_failing_event_and_goes_on(
    app: str, tmp_path: Path
) -> None:
    from shop_read_models import Paid

    with facta.connect(app) as store:
        store.append("order-3", [Paid(13)], facta.ANY)
        store.append("order-3", [Paid(7)], facta.ANY)
    rebuild = ["projections", "rebuild", app, "revenue", "-p", "shop_read_models:Revenue"]
    result = CliRunner().invoke(main, [*rebuild, "--dead-letter", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert (
        "rebuilt 'revenue' from 7 events, up to checkpoint 7; its dead letters hold 1 event"
        in result.output
    )
    assert revenue(tmp_path) == {"order-0": 30, "order-1": 20, "order-3": 7}


def test_run_reads_the_url_from_facta_url_and_parks_failing_events_with_dead_letter(
    app: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "facta", "projections", "run", "revenue"]
    options = ["--poll-interval", "0.05", "--dead-letter", "--batch-size", "2"]
    process = subprocess.Popen(
        [*command, "-p", "shop_read_models:Revenue", *options],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "FACTA_URL": app},
    )
    assert process.stderr is not None
    assert process.stderr.readline() == "running 'revenue' after checkpoint 0\n"
    from shop_read_models import Paid

    with facta.connect(app) as store:
        store.append("order-7", [Paid(13), Paid(5)], facta.ANY)
        for _ in range(1000):
            (status,) = facta.projections.statuses(store)
            if status.lag == 0 and status.checkpoint.position == 7:
                break
            time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    assert process.wait() == 0
    parked, stopped = process.stderr.read().splitlines()
    process.stderr.close()
    assert parked.startswith("projection 'revenue' parked event 'test.projections_cli.Paid'")
    assert parked.endswith("ValueError: unlucky amount")
    assert stopped == "stopped 'revenue' at checkpoint 7; its dead letters hold 1 event"
    assert revenue(tmp_path) == {"order-0": 30, "order-1": 20, "order-7": 5}
