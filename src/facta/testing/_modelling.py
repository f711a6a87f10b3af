# WARNING: generated from src/facta/testing/_modelling_async.py by tools/gen_sync.py; do not edit.
"""The contract's model test, binding the state machine of ``_model`` to the store under test."""

from __future__ import annotations

import pytest

from facta.store import EventStore

__all__ = ["ModelContract"]


class ModelContract:
    """Random appends and reads agree with a plain model (needs hypothesis, else skipped)."""

    def test_random_appends_and_reads_agree_with_a_model(self, store: EventStore) -> None:
        pytest.importorskip("hypothesis")
        from facta.testing._model import check_against_a_model

        check_against_a_model(store)
