# WARNING: generated from src/facta/personal/keychain_async.py by tools/gen_sync.py; do not edit.
"""The event store's data keys: created, fetched, cached, forgotten, re-wrapped.

Encoding and decoding are pure and take keys already at hand (:class:`DataKeys`); this is the
I/O around them. Before an append, the subjects of its personal fields get their data keys
(created and stored, wrapped under the master key, the first time); before a page of events
or snapshots with sealed fields is decoded, the keys they name are fetched. Keys are cached,
unwrapped, for ``cache_seconds``: a subject forgotten through this store is forgotten at once,
one forgotten by another process once that process's cached key expires. A key known to be
destroyed stays known (a key id is never reused). The sync twin is generated from this module.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import NamedTuple

from facta.appending import StreamAppend, is_event_sequence
from facta.errors import StoreError
from facta.events import NewEvent
from facta.personal.cipher import cipher, new_key
from facta.personal.data_keys import DataKey, DataKeys, StoredKey, wrap_context
from facta.personal.errors import MasterKeyError, NoKeyProvider
from facta.personal.fields import personal_fields
from facta.personal.key_table import KeyTable
from facta.personal.providers import KeyProvider
from facta.personal.sealing import SEALED, refs_of
from facta.recorder import Recorder

__all__ = ["DEFAULT_CACHE_SECONDS", "Keychain"]

DEFAULT_CACHE_SECONDS = 60.0
_CACHE_SUBJECTS = 100_000  # past this many, the older half of the cache is dropped
_ADD_ATTEMPTS = 3  # a key created and forgotten at once by others: try again this often

# The keys of the append this task (or thread) is making: an inline projection decodes the
# rows it wrote with them.
_appending: ContextVar[DataKeys | None] = ContextVar("facta_appending_keys", default=None)


class _Cached(NamedTuple):
    key: DataKey | None  # None: destroyed (the subject was forgotten)
    at: float  # time.monotonic() when fetched


class _Found(Mapping[tuple[str, str], DataKey | None]):
    """The cache seen as DataKeys.found: ``(subject, key id) -> key or None``."""

    __slots__ = ("_cache",)

    def __init__(self, cache: dict[str, dict[str, _Cached]]) -> None:
        self._cache = cache

    def __getitem__(self, item: tuple[str, str]) -> DataKey | None:
        return self._cache[item[0]][item[1]].key

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((s, k) for s, keys in list(self._cache.items()) for k in list(keys))

    def __len__(self) -> int:
        return sum(len(keys) for keys in list(self._cache.values()))


class Keychain:
    """One store's data keys: its key table, its key provider and a cache."""

    def __init__(
        self,
        recorder: Recorder,
        provider: KeyProvider | None,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
    ) -> None:
        if provider is not None and not isinstance(provider, KeyProvider):
            raise TypeError(
                f"keys= takes a facta.personal.KeyProvider (EnvKeyProvider, FileKeyProvider, "
                f"KeyRing or your own), got {type(provider).__qualname__}"
            )
        self.recorder, self.provider, self.cache_seconds = recorder, provider, cache_seconds
        self._table: KeyTable | None = None
        self._cache: dict[str, dict[str, _Cached]] = {}  # subject -> key id -> key
        self._current: dict[str, str] = {}  # subject -> the id of its stored key, if known
        self._verified = False

    # -- appending -------------------------------------------------------------------------

    def for_appends(self, appends: Sequence[StreamAppend]) -> DataKeys | None:
        """The current keys of every subject the appends' personal fields belong to (made
        the first time); None when no event has personal fields."""
        subjects: set[str] = set()
        for append in appends:
            stream_id, events = append[0], append[1]
            if not is_event_sequence(events):
                continue  # refused by the store's checks, with their message
            for item in events:
                data = item.data if isinstance(item, NewEvent) else item
                personal = personal_fields(type(data))
                if personal is not None:
                    what = f"event {type(data).__qualname__} for stream {stream_id!r}"
                    self._need_provider(f"{what} has personal fields", "nothing was written")
                    subjects.update(personal.subjects(data, stream_id, what))
        return self.current(subjects) if subjects else None

    @contextlib.contextmanager
    def appending(self, keys: DataKeys) -> Iterator[None]:
        """While an append runs: its keys are the ones an inline projection decodes with."""
        token = _appending.set(keys)
        try:
            yield
        finally:
            _appending.reset(token)

    def current(self, subjects: Iterable[str]) -> DataKeys:
        """The keys new data of ``subjects`` is sealed with, made and stored if missing."""
        provider = self._need_provider("sealing personal data", "nothing was written")
        wanted = set(subjects)
        now = time.monotonic()
        found: dict[str, DataKey] = {}
        for subject in wanted:
            key = self._cached(subject, self._current.get(subject), now)
            if key is not None:
                found[subject] = key
        missing = wanted - found.keys()
        for _ in range(_ADD_ATTEMPTS):
            if not missing:
                break
            self._verify()
            table = self._key_table()
            stored = table.read(sorted(missing))
            made: dict[str, bytes] = {}
            absent = missing - {row.subject for row in stored}
            if absent:
                fresh = []
                for subject in sorted(absent):
                    made[subject] = raw = new_key()
                    wrapped = provider.wrap(raw, wrap_context(subject))
                    fresh.append(StoredKey(subject, secrets.token_hex(8), provider.key_id, wrapped))
                mine = {row.key_id for row in fresh}
                stored += table.add(fresh)
            else:
                mine = set()
            now = time.monotonic()
            for row in stored:
                raw = made[row.subject] if row.key_id in mine else self._unwrap(row)
                key = DataKey(row.key_id, cipher(raw))
                self._remember(row.subject, key, now)
                self._current[row.subject] = row.key_id
                found[row.subject] = key
            missing = wanted - found.keys()  # forgotten by another writer as it was made
        if missing:
            raise StoreError(
                f"the data keys of {_subjects(missing)} were destroyed as fast as they were made "
                f"({_ADD_ATTEMPTS} times): is something forgetting them in a loop? Nothing was "
                "written"
            )
        return DataKeys(current=found)

    # -- reading ---------------------------------------------------------------------------

    def for_rows(self, rows: Iterable[tuple[int, bytes]]) -> DataKeys | None:
        """The keys that the sealed ones of ``(encoding, data)`` pairs need; None if none is
        sealed."""
        wanted: set[tuple[str, str]] = set()
        for encoding, data in rows:
            if encoding & SEALED:
                wanted |= refs_of(encoding, data)
        return None if not wanted else self.fetch(wanted)

    def fetch(self, wanted: Iterable[tuple[str, str]]) -> DataKeys:
        """The keys ``(subject, key id)`` pairs name: each one, or None where it is destroyed."""
        wanted = set(wanted)
        if self.provider is None:
            return DataKeys(
                missing="the event store was opened without a key provider: open it with "
                "facta.connect(url, keys=...) (the CLI takes --keys-file or --keys-env)"
            )
        now = time.monotonic()
        found: dict[tuple[str, str], DataKey | None] = {}
        fetch: set[str] = set()
        for subject, key_id in wanted:
            entry = self._cache.get(subject, {}).get(key_id)
            if entry is not None and (entry.key is None or now - entry.at < self.cache_seconds):
                found[subject, key_id] = entry.key
            else:
                fetch.add(subject)
        if fetch:
            self._verify()
            rows = {row.subject: row for row in self._key_table().read(sorted(fetch))}
            now = time.monotonic()
            for subject, key_id in wanted:
                if subject not in fetch:
                    continue
                row = rows.get(subject)
                key = None
                if row is not None:
                    self._current[subject] = row.key_id
                    if row.key_id == key_id:
                        key = DataKey(key_id, cipher(self._unwrap(row)))
                self._remember(subject, key, now, key_id)
                found[subject, key_id] = key
        return DataKeys(found=found)

    def known(self, keys: DataKeys | None) -> DataKeys:
        """``keys``, or else what is at hand without I/O: the keys of the append in progress
        (an inline projection decodes its rows) and the cache."""
        if keys is not None:
            return keys
        appending = _appending.get()
        return DataKeys(
            current={} if appending is None else appending.current,
            found=_Found(self._cache),
        )

    # -- forgetting and rotating -----------------------------------------------------------

    def forget(self, subject: str) -> bool:
        """Destroy ``subject``'s data key; whether it had one. Needs no master key."""
        if not isinstance(subject, str) or not subject:
            raise ValueError(f"a subject is a non-empty str, got {subject!r}")
        deleted = self._key_table().delete([subject])
        now = time.monotonic()
        for key_id in list(self._cache.get(subject, ())):
            self._cache[subject][key_id] = _Cached(None, now)
        known = self._current.pop(subject, None)
        if known is not None:
            self._cache.setdefault(subject, {})[known] = _Cached(None, now)
        return deleted > 0

    def rotate(self, to: KeyProvider, batch_size: int = 1000) -> int:
        """Re-wrap every data key under ``to``'s master key (the store's provider unwraps
        them); how many were re-wrapped. Keys already under it are left, so a rotation that
        stopped half-way is finished by running it again."""
        if not isinstance(to, KeyProvider):
            raise TypeError(f"rotate to a facta.personal.KeyProvider, got {to!r}")
        self._need_provider("re-wrapping data keys", "nothing was changed")
        table = self._key_table()
        after: str | None = None
        done = 0
        while True:
            rows = table.page(after, batch_size)
            if not rows:
                return done
            rewrapped = [
                StoredKey(
                    row.subject,
                    row.key_id,
                    to.key_id,
                    to.wrap(self._unwrap(row), wrap_context(row.subject)),
                )
                for row in rows
                if row.master_key_id != to.key_id
            ]
            if rewrapped:
                done += table.replace(rewrapped)
            after = rows[-1].subject

    # -- inside ------------------------------------------------------------------------------

    def _key_table(self) -> KeyTable:
        if self._table is None:
            self._table = self.recorder.key_table()
        return self._table

    def _need_provider(self, doing: str, outcome: str) -> KeyProvider:
        if self.provider is None:
            raise NoKeyProvider(
                f"{doing}, but the event store ({self.recorder.location}) was opened without a "
                "key provider to keep their data keys with; open it with facta.connect(url, "
                f"keys=facta.personal.EnvKeyProvider('FACTA_MASTER_KEY')) or another "
                f"provider (docs/personal-data.md); {outcome}"
            )
        return self.provider

    def _verify(self) -> None:
        """Once: check that the provider's master key unwraps a key stored already, so that
        a wrong master key is refused before any new key is wrapped under it."""
        if self._verified:
            return
        sample = self._key_table().page(None, 1)
        for row in sample:
            self._unwrap(row)
        self._verified = True

    def _unwrap(self, row: StoredKey) -> bytes:
        provider = self._need_provider("opening a data key", "nothing was read")
        try:
            raw = provider.unwrap(row.wrapped, row.master_key_id, wrap_context(row.subject))
        except MasterKeyError as e:
            raise MasterKeyError(
                f"the data key of subject {row.subject!r} in {self.recorder.location} cannot be "
                f"unwrapped: {e}. Open the store with the master key it was wrapped under (during "
                "a rotation, a KeyRing of the new and the old one); nothing was written"
            ) from e
        if len(raw) != 32:
            raise MasterKeyError(
                f"the data key of subject {row.subject!r} unwrapped to {len(raw)} bytes, not 32: "
                "the key provider returned something else than what it wrapped"
            )
        return raw

    def _cached(self, subject: str, key_id: str | None, now: float) -> DataKey | None:
        if key_id is None:
            return None
        entry = self._cache.get(subject, {}).get(key_id)
        if entry is None or entry.key is None or now - entry.at >= self.cache_seconds:
            return None
        return entry.key

    def _remember(
        self, subject: str, key: DataKey | None, now: float, key_id: str | None = None
    ) -> None:
        if len(self._cache) >= _CACHE_SUBJECTS and subject not in self._cache:
            for old in list(self._cache)[: _CACHE_SUBJECTS // 2]:  # the oldest half
                del self._cache[old]
                self._current.pop(old, None)
        entry = _Cached(key, now)
        self._cache.setdefault(subject, {})[key.key_id if key is not None else str(key_id)] = entry


def _subjects(subjects: Iterable[str]) -> str:
    shown = sorted(subjects)
    more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
    return f"subject{'s' if len(shown) > 1 else ''} {', '.join(map(repr, shown[:3]))}{more}"
