"""``facta delete``, ``reopen``, ``truncate``, ``retain`` and ``prune`` on a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import facta
from facta.cli import main
from facta.cli.lifecycle import parse_age
from facta.testing.events import Happened


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A store holding stream ``a`` (5 events) and ``b`` (3 events)."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with facta.connect(url) as store:
        store.append("a", [Happened(n) for n in range(5)], facta.NO_STREAM)
        store.append("b", [Happened(n) for n in range(3)], facta.NO_STREAM)
    return url


def facta_cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def marker_types(url: str) -> list[tuple[str, int, str]]:
    with facta.connect(url, read_only=True) as store:
        return [(e.stream_id, e.version, e.type) for e in store.read_all() if e.version < 0]


def test_delete_reopen_and_delete_hard(url: str) -> None:
    deleted = facta_cli("delete", url, "a", "--expected", "5", "--reason", "a test")
    assert (deleted.exit_code, deleted.output) == (0, "deleted stream 'a' at version 5\n")
    shown = facta_cli("show", url, "a")  # a soft deletion keeps the events
    assert shown.exit_code == 0
    assert shown.output.count("facta.testing.Happened") == 5
    reopened = facta_cli("reopen", url, "a")
    assert (reopened.exit_code, reopened.output) == (0, "reopened stream 'a' at version 5\n")
    hard = facta_cli("delete", url, "a", "--hard")
    assert (hard.exit_code, hard.output) == (0, "hard-deleted stream 'a' at version 5\n")
    gone = facta_cli("show", url, "a")
    assert gone.exit_code == 2
    assert "was hard-deleted" in gone.output
    assert marker_types(url) == [
        ("a", -1, "facta.StreamDeleted"),
        ("a", -2, "facta.StreamReopened"),
        ("a", -3, "facta.StreamDeleted"),
    ]


def test_refused_changes_exit_2_with_one_line_and_change_nothing(url: str) -> None:
    before = Path(url.removeprefix("sqlite:///")).read_bytes()
    for args, message in [
        (
            ("delete", url, "a", "--expected", "4"),
            "expected version 4, but the stream is at version 5",
        ),
        (("delete", url, "a", "--reuse"), "needs hard=True"),
        (("reopen", url, "a"), "is not deleted"),
        (("truncate", url, "a", "--before", "9"), "the stream is at version 5"),
        (("retain", url, "a", "--max-age", "soon"), "is not an age"),
        (("retain", url, "nobody", "--max-count", "1"), "holds no events"),
    ]:
        result = facta_cli(*args)
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert sum(line.startswith("Error:") for line in result.output.splitlines()) == 1
    assert marker_types(url) == []
    with facta.connect(url, read_only=True) as store:
        assert [e.version for e in store.read_stream("a")] == [1, 2, 3, 4, 5]
    assert Path(url.removeprefix("sqlite:///")).read_bytes().startswith(before[:100])


def test_truncate_retain_and_prune(url: str) -> None:
    truncated = facta_cli("truncate", url, "a", "--before", "3")
    assert (truncated.exit_code, truncated.output) == (0, "removed 2 events of stream 'a'\n")
    retained = facta_cli("retain", url, "b", "--max-count", "1")
    assert retained.output == "stream 'b' keeps the newest 1\n"
    pruned = facta_cli("prune", url)
    assert (pruned.exit_code, pruned.output) == (0, "b: removed 2\npruned 2 events in 1 streams\n")
    again = facta_cli("prune", url)
    assert again.output == "pruned 0 events in 0 streams\n"
    with facta.connect(url, read_only=True) as store:
        assert [e.version for e in store.read_stream("a")] == [3, 4, 5]
        assert [e.version for e in store.read_stream("b")] == [3]
    checked = facta_cli("check", url, "--import", "facta.testing.events")
    assert checked.exit_code == 0, checked.output


def test_ages_read_as_the_command_line_writes_them() -> None:
    assert parse_age("90s").total_seconds() == 90
    assert parse_age("1.5h").total_seconds() == 5400
    assert parse_age("30d").days == 30
