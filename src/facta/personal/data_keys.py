"""Subjects' data keys: as a key table stores them, and as encoding and decoding use them.

Pure values, no I/O: the store fetches (or creates) the keys an encode or decode needs and
hands them over as :class:`DataKeys`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from facta.personal.cipher import Cipher
from facta.personal.errors import KeysUnavailable, PersonalDataError

__all__ = ["DataKey", "DataKeys", "StoredKey", "wrap_context"]


class StoredKey(NamedTuple):
    """One row of a store's key table: a subject's data key, wrapped under a master key.

    ``key_id`` names this data key (random, never reused: a subject forgotten and then seen
    again gets a new one); ``master_key_id`` names the master key it is wrapped under.
    """

    subject: str
    key_id: str
    master_key_id: str
    wrapped: bytes


class DataKey(NamedTuple):
    """A data key ready for use: its id and its cipher (the key itself stays inside)."""

    key_id: str
    cipher: Cipher


class DataKeys:
    """The data keys one encode or decode may use.

    ``current`` maps a subject to the key new data of it is sealed with; ``found`` maps
    ``(subject, key_id)`` to the key sealed data names, or None where that key is destroyed
    (the subject was forgotten). ``missing`` says why a key that is in neither was not
    fetched: a decode that meets one raises ``PersonalDataError`` with it.
    """

    __slots__ = ("current", "found", "missing")

    def __init__(
        self,
        current: dict[str, DataKey] | None = None,
        found: Mapping[tuple[str, str], DataKey | None] | None = None,
        missing: str = "its key was not fetched: read through the store, or fetch the keys "
        "first (store.fetch_keys(rows))",
    ) -> None:
        self.current: dict[str, DataKey] = {} if current is None else current
        self.found: Mapping[tuple[str, str], DataKey | None] = {} if found is None else found
        self.missing = missing

    def for_subject(self, subject: str) -> DataKey:
        """The key to seal ``subject``'s data with."""
        try:
            return self.current[subject]
        except KeyError:
            raise PersonalDataError(
                f"no data key of subject {subject!r} was fetched for this encode: append "
                "through an event store opened with a key provider (facta.connect(url, keys=...))"
            ) from None

    def lookup(self, subject: str, key_id: str) -> DataKey | None:
        """The key ``key_id`` of ``subject``; None when it is destroyed (forgotten)."""
        try:
            return self.found[subject, key_id]
        except KeyError:
            pass
        current = self.current.get(subject)
        if current is not None and current.key_id == key_id:
            return current
        raise KeysUnavailable(
            f"sealed data of subject {subject!r} cannot be opened: {self.missing}"
        )


def wrap_context(subject: str) -> bytes:
    """What a wrapped data key is bound to: its subject (it unwraps for no other)."""
    return b"facta.data-key\x00" + subject.encode("utf-8", "surrogatepass")
