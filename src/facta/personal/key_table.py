# WARNING: generated from src/facta/personal/key_table_async.py by tools/gen_sync.py; do not edit.
"""The backend side of personal data: a store's table of subjects' data keys.

A recorder that can hold personal data returns an :class:`KeyTable` from
``recorder.key_table()``. It stores :class:`~facta.personal.StoredKey` rows (a subject's data
key, wrapped under the application's master key) and never sees a key in the clear: wrapping,
unwrapping and caching are the event store's. ``docs/backends.md`` describes the contract;
the sync twin (``key_table.py``) is generated from this module.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from facta.personal.data_keys import StoredKey

__all__ = ["KeyTable"]


class KeyTable(abc.ABC):
    """Subjects' wrapped data keys, one per subject, in the store's database."""

    @abc.abstractmethod
    def read(self, subjects: Sequence[str]) -> list[StoredKey]:
        """The stored keys of those of ``subjects`` that have one, in any order."""

    @abc.abstractmethod
    def add(self, keys: Sequence[StoredKey]) -> list[StoredKey]:
        """Store each of ``keys`` whose subject has no key yet, in one transaction; return the
        stored key of every subject given (one already stored wins over the one given, so
        that two writers racing to create a subject's key both use the same one)."""

    @abc.abstractmethod
    def delete(self, subjects: Sequence[str]) -> int:
        """Destroy the keys of ``subjects`` for good, overwriting their bytes where the
        database can; how many there were."""

    @abc.abstractmethod
    def page(self, after: str | None, limit: int) -> list[StoredKey]:
        """Up to ``limit`` stored keys whose subjects come after ``after`` (from the first if
        None), ordered by subject in code point order."""

    @abc.abstractmethod
    def replace(self, keys: Sequence[StoredKey]) -> int:
        """Store the re-wrapped ``keys`` (a master key rotation): each replaces the master key
        id and wrapped bytes of the row with its subject *and* key id, in one transaction; a
        key destroyed or replaced meanwhile is left alone. How many rows were replaced."""
