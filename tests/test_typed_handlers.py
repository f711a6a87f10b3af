"""Typed handlers: ``RecordedEvent[Deposited]`` makes mypy --strict check a projection
handler's ``event.data``; a bare ``RecordedEvent`` keeps working as ``RecordedEvent[Any]``."""

from __future__ import annotations

import textwrap
import typing
from dataclasses import dataclass
from pathlib import Path

from mypy import api

import facta
from facta import RecordedEvent
from facta.projections import Projection, ProjectionRunner, handles

HEADER = """\
from __future__ import annotations

from dataclasses import dataclass

import facta
from facta import RecordedEvent
from facta.projections import Projection, handles


@facta.event("user.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


@facta.event("user.Withdrawn")
@dataclass(frozen=True)
class Withdrawn:
    amount: int
    reason: str


class Balances(Projection[None]):
    name = "balances"

    def __init__(self) -> None:
        self.total = 0
"""


def mypy_strict(tmp_path: Path, handlers: str) -> tuple[str, int]:
    """mypy --strict's report on a user module (HEADER, then ``handlers`` in its class)."""
    module = tmp_path / "user_projection.py"
    module.write_text(HEADER + textwrap.indent(textwrap.dedent(handlers), "    "))
    config = tmp_path / "mypy.ini"  # not the project's configuration: a user's, strict
    config.write_text("[mypy]\nstrict = True\n")
    out, err, status = api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--no-error-summary",
            "--show-error-codes",
            str(module),
        ]
    )
    assert err == "", err
    return out, status


def test_mypy_strict_accepts_handlers_that_use_their_event_class_fields(tmp_path: Path) -> None:
    out, status = mypy_strict(
        tmp_path,
        """
        @handles(Deposited)
        def deposited(self, event: RecordedEvent[Deposited], connection: None) -> None:
            self.total += event.data.amount

        @handles(Withdrawn)
        async def withdrawn(self, event: RecordedEvent[Withdrawn], connection: None) -> None:
            self.total -= event.data.amount

        @handles(Deposited, Withdrawn)
        def either(
            self, event: RecordedEvent[Deposited | Withdrawn], connection: None
        ) -> None:
            self.total += event.data.amount
        """,
    )
    assert (out, status) == ("", 0)


def test_mypy_strict_reports_a_wrong_attribute_of_a_typed_event(tmp_path: Path) -> None:
    out, status = mypy_strict(
        tmp_path,
        """
        @handles(Deposited)
        def deposited(self, event: RecordedEvent[Deposited], connection: None) -> None:
            self.total += event.data.amont
        """,
    )
    assert status == 1
    assert '"Deposited" has no attribute "amont"' in out
    assert "[attr-defined]" in out


def test_mypy_strict_reports_a_handler_typed_for_another_class_than_it_handles(
    tmp_path: Path,
) -> None:
    out, status = mypy_strict(
        tmp_path,
        """
        @handles(Withdrawn)
        def withdrawn(self, event: RecordedEvent[Deposited], connection: None) -> None:
            self.total -= event.data.amount
        """,
    )
    assert status == 1
    assert 'expected "Callable[[Balances, RecordedEvent[Withdrawn], None], None]"' in out


def test_mypy_strict_takes_a_bare_recorded_event_as_one_of_any_data(tmp_path: Path) -> None:
    out, status = mypy_strict(
        tmp_path,
        """
        @handles(Deposited)
        def deposited(self, event: RecordedEvent, connection: None) -> None:
            self.total += event.data.whatever
        """,
    )
    assert (out, status) == ("", 0)


@facta.event("test.typed.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


class Total(Projection[None]):
    name = "typed-total"

    def __init__(self) -> None:
        self.total = 0

    @handles(Deposited)
    def deposited(self, event: RecordedEvent[Deposited], connection: None) -> None:
        self.total += event.data.amount


def test_a_handler_typed_with_recorded_event_of_its_class_runs() -> None:
    with facta.connect("memory://") as store:
        store.append("acc-1", [Deposited(5), Deposited(7)], facta.NO_STREAM)
        projection = Total()
        with ProjectionRunner(store, projection) as runner:
            runner.catch_up()
    assert projection.total == 12


def test_recorded_event_of_a_class_is_a_runtime_annotation_too() -> None:
    hints = typing.get_type_hints(Total.deposited)
    assert hints["event"] == RecordedEvent[Deposited]
    assert typing.get_args(hints["event"]) == (Deposited,)
