# WARNING: generated from src/facta/testing/_modelling_async.py by tools/gen_sync.py; do not edit.
"""The contract's model test, binding the state machine of ``_model`` to the store under test."""

from __future__ import annotations

import pytest

from facta.store import EventStore

__all__ = ["ModelContract"]


class ModelContract:
    """Random appends and reads agree with a plain model (needs hypothesis, else skipped).

    A binding may change how many runs (``model_examples``) of how many steps
    (``model_steps``) it makes, e.g. fewer where every read waits for other sessions.
    """

    model_examples = 20
    model_steps = 20

    def test_random_appends_and_reads_agree_with_a_model(self, store: EventStore) -> None:
        pytest.importorskip("hypothesis")
        from facta.testing._model import check_against_a_model

        check_against_a_model(store, self.model_examples, self.model_steps)
