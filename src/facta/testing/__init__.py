"""Test helpers: given / when / then scenarios for an application's aggregates and
projections, and the event store contract suite for facta's backends and third-party ones.

:func:`scenario` and :func:`projection_scenario` (see :mod:`facta.testing.scenarios`) test an
application's code in plain pytest tests. A backend's test module subclasses the contract suite
and provides the store under test as a fixture: ``store`` for :class:`EventStoreContract`,
``async_store`` for :class:`AsyncEventStoreContract`. Needs pytest (and pytest-asyncio for the
async suite); the model test needs hypothesis, and is skipped without it.
"""

import pytest

# The suite's assertions report their values, as they would in a test module.
pytest.register_assert_rewrite(
    "facta.testing._model",
    "facta.testing._read_model",
    "facta.testing._inboxes",
    *(
        f"facta.testing.{module}{flavour}"
        for module in (
            "_appending",
            "_bad_input",
            "_inline",
            "_modelling",
            "_projecting",
            "_projections",
            "_racing",
            "_reading",
            "_subscribing",
            "_support",
        )
        for flavour in ("", "_async")
    ),
)

from facta.testing.contract import EventStoreContract  # noqa: E402
from facta.testing.contract_async import AsyncEventStoreContract  # noqa: E402
from facta.testing.scenarios import (  # noqa: E402
    AggregateScenario,
    ProjectionScenario,
    projection_scenario,
    scenario,
)

__all__ = [
    "AggregateScenario",
    "AsyncEventStoreContract",
    "EventStoreContract",
    "ProjectionScenario",
    "projection_scenario",
    "scenario",
]
