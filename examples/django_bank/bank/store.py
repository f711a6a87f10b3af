"""The facta store of the project: in Django's own database (facta's tables in the schema
``facta``), one per database Django uses, opened on first use and closed at exit."""

from __future__ import annotations

import atexit
import threading
from typing import Any
from urllib.parse import quote

import psycopg
from django.db import connection

import facta
from facta.projections import add_inline

from .domain import Account
from .projections import Balances

_stores: dict[str, facta.EventStore] = {}
_lock = threading.Lock()


def event_store() -> facta.EventStore:
    """The store in the database Django is connected to now (its test database in tests)."""
    url = _url(connection.settings_dict)
    with _lock:
        store = _stores.get(url)
        if store is None:
            if not _stores:
                atexit.register(close_stores)  # once: it closes them all
            store = _stores[url] = facta.connect(url)
            add_inline(store, Balances())
    return store


def accounts() -> facta.Repository[Account]:
    return facta.Repository(event_store(), Account)


def atomic_connection() -> psycopg.Connection[Any]:
    """Django's psycopg connection, inside the ``transaction.atomic()`` block open on it: the
    connection to append in, so that the events commit with the models."""
    if not connection.in_atomic_block:
        raise RuntimeError("append in Django's transaction: call this inside transaction.atomic()")
    connection.ensure_connection()
    raw = connection.connection
    assert isinstance(raw, psycopg.Connection), "the example runs on PostgreSQL with psycopg 3"
    return raw


def close_stores() -> None:
    """Close every store opened (their pools hold connections to the database)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


def _url(settings: dict[str, Any]) -> str:
    user, password = (
        quote(settings["USER"] or "", safe=""),
        quote(settings["PASSWORD"] or "", safe=""),
    )
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or "5432"
    return (
        f"postgresql://{credentials}{host}:{port}/{quote(settings['NAME'], safe='')}?schema=facta"
    )
