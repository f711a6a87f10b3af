"""The errors of personal data: a store without a key provider, a master key that does not fit."""

from __future__ import annotations

from facta.errors import ConfigurationError, DecodeError, FactaError

__all__ = ["KeysUnavailable", "MasterKeyError", "NoKeyProvider", "PersonalDataError"]


class PersonalDataError(FactaError):
    """Personal fields cannot be encrypted or decrypted as asked (see the subclasses)."""


class NoKeyProvider(PersonalDataError, ConfigurationError):
    """Events or snapshots with personal fields meet a store opened without a key provider;
    nothing was written."""


class MasterKeyError(PersonalDataError):
    """A master key is malformed, or is not the one a data key was wrapped under (a wrong
    ``FACTA_MASTER_KEY``, an unfinished rotation); nothing was written."""


class KeysUnavailable(PersonalDataError, DecodeError):
    """A sealed field meets a decode without its data key at hand: the store has no key
    provider, or the keys were not fetched before decoding (``store.fetch_keys``)."""
