"""AES-256-GCM from the ``cryptography`` package (the ``personal`` extra), imported on first use.

Every sealed value is ``nonce (12 random bytes) + ciphertext + tag (16 bytes)``; the associated
data binds it to what it belongs to (a subject and a key id, or a subject for a wrapped key),
so a sealed value moved elsewhere does not open.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, Protocol

from facta.errors import ConfigurationError

__all__ = ["KEY_SIZE", "Cipher", "cipher", "new_key", "seal", "unseal"]

KEY_SIZE = 32  # AES-256
NONCE_SIZE = 12
TAG_SIZE = 16


class Cipher(Protocol):
    """What :func:`cipher` gives: AES-GCM under one key."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


@cache
def _module() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers import aead
    except ImportError as e:
        raise ConfigurationError(
            "personal data is encrypted with AES-GCM from the cryptography package, which is "
            "not installed: pip install 'facta[personal]'"
        ) from e
    return aead


@cache
def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


def cipher(key: bytes) -> Cipher:
    """AES-256-GCM under ``key`` (32 bytes)."""
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ValueError(f"an AES-256 key is {KEY_SIZE} bytes, got {len(key)} bytes")
    result: Cipher = _module().AESGCM(key)
    return result


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_SIZE)


def seal(under: Cipher, plaintext: bytes, associated: bytes) -> bytes:
    """``plaintext`` encrypted under ``under``, with a fresh nonce in front."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + under.encrypt(nonce, plaintext, associated)


def unseal(under: Cipher, sealed: bytes, associated: bytes) -> bytes | None:
    """The plaintext of ``sealed``, or None when it does not open under ``under`` with
    ``associated`` (another key, or altered bytes)."""
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        return None
    try:
        return under.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], associated)
    except _invalid_tag():
        return None
