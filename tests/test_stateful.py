"""The contract's model test (random appends and reads against a dict of lists), run longer.

Every backend bound to the contract suite runs the model test; facta's embedded backends
also run it here with more and longer examples.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import facta
from facta.testing._model import check_against_a_model


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Overrides conftest's ``url``: its ``store`` fixture then opens these backends."""
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'model.db'}"


def test_random_appends_and_reads_agree_with_a_model_over_longer_runs(
    store: facta.EventStore,
) -> None:
    check_against_a_model(store, examples=100, steps=40)
