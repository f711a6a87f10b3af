"""Master keys: the application's, handed to a store as a :class:`KeyProvider`.

Each subject's data key is stored *wrapped* (encrypted) under a master key that the store
never holds itself: a key provider wraps and unwraps data keys, and names the master key it
wraps with (``key_id``, stored beside every wrapped key). :class:`AesKeyProvider` holds the
master key in memory; :class:`EnvKeyProvider` and :class:`FileKeyProvider` read it from an
environment variable or a file the application names (for development and simple
deployments); :class:`KeyRing` unwraps with older keys too, while a rotation runs. A key
management service plugs in as a provider of its own (docs/personal-data.md shows one).

>>> key = generate_master_key()
>>> provider = AesKeyProvider(key)
>>> wrapped = provider.wrap(b"k" * 32, b"subject c-1")
>>> provider.unwrap(wrapped, provider.key_id, b"subject c-1") == b"k" * 32
True
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from facta.personal.cipher import KEY_SIZE, cipher, new_key, seal, unseal
from facta.personal.errors import MasterKeyError

__all__ = [
    "AesKeyProvider",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "KeyRing",
    "generate_master_key",
    "parse_master_key",
]


class KeyProvider(abc.ABC):
    """Wraps and unwraps subjects' data keys under the application's master key.

    ``key_id`` names the master key :meth:`wrap` uses; it is stored with each wrapped key, so
    that a store can tell which master key it needs (and a rotation which keys are done). It
    must not reveal the key. Both methods are called with a ``context`` (the subject the data
    key belongs to) that a wrapped key is bound to: it unwraps only with the same context.
    """

    key_id: str

    @abc.abstractmethod
    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """``data_key`` encrypted under the master key named ``key_id``, bound to ``context``."""

    @abc.abstractmethod
    def unwrap(self, wrapped: bytes, key_id: str, context: bytes) -> bytes:
        """The data key that :meth:`wrap` wrapped under master key ``key_id`` with this
        ``context``; ``MasterKeyError`` when this provider does not hold that master key, or
        the wrapped key does not open with it."""

    def holds(self, key_id: str) -> bool:
        """Whether :meth:`unwrap` can unwrap keys wrapped under master key ``key_id``."""
        return key_id == self.key_id


class AesKeyProvider(KeyProvider):
    """A master key held in memory: wraps with AES-256-GCM.

    ``master_key`` is 32 bytes, or their base64 text (as :func:`generate_master_key` makes).
    ``key_id`` defaults to a fingerprint of the key (an HMAC of it: it reveals nothing).
    """

    def __init__(self, master_key: bytes | str, *, key_id: str | None = None) -> None:
        key = parse_master_key(master_key, "the master key")
        self._cipher = cipher(key)
        self.key_id = fingerprint(key) if key_id is None else _checked_id(key_id)

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        return seal(self._cipher, data_key, context)

    def unwrap(self, wrapped: bytes, key_id: str, context: bytes) -> bytes:
        if key_id != self.key_id:
            raise MasterKeyError(
                f"it was wrapped under master key {key_id!r}, but the store's key provider "
                f"holds master key {self.key_id!r}"
            )
        found = unseal(self._cipher, wrapped, context)
        if found is None:
            raise MasterKeyError(
                f"it does not unwrap with the store's master key {self.key_id!r}: the key "
                "named so is not the one it was wrapped under, or the stored key is damaged"
            )
        return found

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r})"  # never the key


class EnvKeyProvider(AesKeyProvider):
    """The master key from environment variable ``variable`` (base64 of 32 bytes).

    The variable is read once, when the provider is made, and only because the application
    names it: facta itself never reads the environment.
    """

    def __init__(self, variable: str = "FACTA_MASTER_KEY", *, key_id: str | None = None) -> None:
        text = os.environ.get(variable)
        if text is None:
            raise MasterKeyError(
                f"environment variable {variable} holds no master key (it is not set); set it "
                "to the base64 of 32 random bytes (`facta keys new` prints one)"
            )
        self.variable = variable
        super().__init__(parse_master_key(text, f"environment variable {variable}"), key_id=key_id)


class FileKeyProvider(AesKeyProvider):
    """The master key from the file at ``path`` (base64 of 32 bytes; surrounding blanks are
    ignored). Keep the file readable by the application's user only."""

    def __init__(self, path: str | os.PathLike[str], *, key_id: str | None = None) -> None:
        self.path = Path(path)
        try:
            text = self.path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as e:
            raise MasterKeyError(
                f"cannot read the master key file {str(self.path)!r}: {e} (`facta keys new "
                f"--file {self.path}` makes one)"
            ) from e
        super().__init__(
            parse_master_key(text, f"master key file {str(self.path)!r}"), key_id=key_id
        )


class KeyRing(KeyProvider):
    """Wraps with ``current``; unwraps with whichever of ``current`` and ``previous`` holds
    the master key a data key was wrapped under. Give it to stores while a master key
    rotation runs, so that keys not yet re-wrapped still unwrap."""

    def __init__(self, current: KeyProvider, *previous: KeyProvider) -> None:
        for provider in (current, *previous):
            if not isinstance(provider, KeyProvider):
                raise TypeError(f"a KeyRing holds KeyProviders, got {provider!r}")
        self.current, self.previous = current, previous
        self.key_id = current.key_id

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        return self.current.wrap(data_key, context)

    def unwrap(self, wrapped: bytes, key_id: str, context: bytes) -> bytes:
        for provider in (self.current, *self.previous):
            if provider.holds(key_id):
                return provider.unwrap(wrapped, key_id, context)
        held = ", ".join(repr(p.key_id) for p in (self.current, *self.previous))
        raise MasterKeyError(
            f"it was wrapped under master key {key_id!r}, and the store's key ring holds {held}"
        )

    def holds(self, key_id: str) -> bool:
        return any(p.holds(key_id) for p in (self.current, *self.previous))

    def __repr__(self) -> str:
        return f"KeyRing({', '.join(map(repr, (self.current, *self.previous)))})"


def generate_master_key() -> str:
    """A new random master key, as the base64 text the providers read."""
    return base64.b64encode(new_key()).decode("ascii")


def parse_master_key(key: bytes | str, what: str) -> bytes:
    """The 32 bytes of a master key given as bytes or as base64 text; ``MasterKeyError``
    naming ``what`` otherwise."""
    if isinstance(key, bytes) and len(key) == KEY_SIZE:
        return key
    if isinstance(key, bytes | str):
        text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
        try:
            raw = base64.b64decode(
                text.strip().encode("ascii"), altchars=_altchars(text), validate=True
            )
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raw = b""
        if len(raw) == KEY_SIZE:
            return raw
    raise MasterKeyError(
        f"{what} is not a master key: it must be 32 random bytes written in base64 (44 "
        "characters; `facta keys new` prints one)"
    )


def fingerprint(key: bytes) -> str:
    """A master key's default id: an HMAC of it, which reveals nothing of the key."""
    return "aes-" + hmac.new(key, b"facta master key id", hashlib.sha256).hexdigest()[:16]


def _altchars(text: str) -> bytes | None:
    """The URL-safe alphabet when the text uses it."""
    return b"-_" if "-" in text or "_" in text else None


def _checked_id(key_id: object) -> str:
    if not isinstance(key_id, str) or not key_id or len(key_id) > 200:
        raise MasterKeyError(
            f"a master key id is a non-empty str of up to 200 characters, got {key_id!r}"
        )
    return key_id
