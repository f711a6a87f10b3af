"""The memory store's data keys: a dict of subject -> wrapped key, under the store's lock."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence

from facta.personal.data_keys import StoredKey
from facta.personal.key_table_async import AsyncKeyTable

__all__ = ["AsyncMemoryKeyTable"]


class AsyncMemoryKeyTable(AsyncKeyTable):
    """Subjects' wrapped data keys in ``keys``; ``check_writable`` refuses writes to a store
    opened read-only."""

    def __init__(
        self,
        keys: dict[str, StoredKey],
        lock: threading.Lock,
        check_writable: Callable[[], None],
    ) -> None:
        self._keys, self._lock, self._check_writable = keys, lock, check_writable

    async def read(self, subjects: Sequence[str]) -> list[StoredKey]:
        with self._lock:
            return [self._keys[s] for s in dict.fromkeys(subjects) if s in self._keys]

    async def add(self, keys: Sequence[StoredKey]) -> list[StoredKey]:
        self._check_writable()
        with self._lock:
            return [self._keys.setdefault(key.subject, key) for key in keys]

    async def delete(self, subjects: Sequence[str]) -> int:
        self._check_writable()
        with self._lock:
            return sum(self._keys.pop(s, None) is not None for s in set(subjects))

    async def page(self, after: str | None, limit: int) -> list[StoredKey]:
        with self._lock:
            subjects = sorted(self._keys)
            start = 0 if after is None else bisect.bisect_right(subjects, after)
            return [self._keys[s] for s in subjects[start : start + limit]]

    async def replace(self, keys: Sequence[StoredKey]) -> int:
        self._check_writable()
        with self._lock:
            done = 0
            for key in keys:
                stored = self._keys.get(key.subject)
                if stored is not None and stored.key_id == key.key_id:
                    self._keys[key.subject] = key
                    done += 1
            return done
