"""The contract's model test, binding the state machine of ``_model`` to the store under test."""

from __future__ import annotations

import pytest

from facta.store_async import AsyncEventStore

__all__ = ["AsyncModelContract"]


class AsyncModelContract:
    """Random appends and reads agree with a plain model (needs hypothesis, else skipped).

    A binding may change how many runs (``model_examples``) of how many steps
    (``model_steps``) it makes, e.g. fewer where every read waits for other sessions.
    """

    model_examples = 20
    model_steps = 20

    async def test_random_appends_and_reads_agree_with_a_model(
        self, store: AsyncEventStore
    ) -> None:
        pytest.importorskip("hypothesis")
        from facta.testing._model import check_against_a_model_async

        await check_against_a_model_async(store, self.model_examples, self.model_steps)
