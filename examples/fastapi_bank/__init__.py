"""A bank account HTTP API: FastAPI over an async facta store, on SQLite or PostgreSQL.

- ``domain.py``: the events and the ``Account`` aggregate (tested with ``facta.testing.scenario``);
- ``read_model.py``: a projection keeping every account's balance in a table of the store's
  database, and the queries of the read endpoints;
- ``app.py``: the app. The store opens in the app's lifespan, together with a runner that keeps
  the read model up to date; the repository is a dependency; ``ConcurrencyError`` answers 409,
  ``AggregateNotFound`` 404;
- ``tests.py``: its tests, with httpx against the app in the same process. The test-suite runs
  them on SQLite and PostgreSQL (``tests/test_example_apps.py``).

Run it (from ``examples/``, with uvicorn installed; ``BANK_URL`` names the store, a SQLite file
by default)::

    BANK_URL=sqlite:///bank.db uvicorn --factory fastapi_bank.app:from_environment
"""
