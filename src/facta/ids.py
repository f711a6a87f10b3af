"""Aggregate ids: time-ordered UUIDv7 by default, UUIDv5 for ids derived from natural keys.

Any non-empty string is a valid stream id, so domain ids (``"order-2026-0042"``) work as they are.

>>> new_id() < new_id()
True
>>> id_from_key("customer", "ada@example.com") == id_from_key("customer", "ada@example.com")
True
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from facta.errors import InvalidStreamId

__all__ = ["id_from_key", "new_id", "uuid7", "uuid_from_bytes", "validate_stream_id"]

# The namespace under which facta derives UUIDv5 ids; fixed forever, stored ids depend on it.
FACTA_NAMESPACE = uuid.UUID("6f1c1a1e-4d2b-5a37-9c0e-8f7a2b3c4d5e")

_UNKNOWN_SAFETY = uuid.SafeUUID.unknown
_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then a counter and randomness.

    Ids made in one process are strictly increasing, even within one millisecond, so they
    sort in creation order and keep B-tree inserts at the right edge of the index.
    """
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:  # same millisecond (or the clock stepped back): count on from the last id
            _counter += 1
            if _counter > 0xFFF:
                _last_ms, _counter = _last_ms + 1, 0
            ms = _last_ms
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    return _uuid_from_int((ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand)


def _uuid_from_int(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a value known to fit, without the checks."""
    made = object.__new__(uuid.UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", _UNKNOWN_SAFETY)
    return made


def uuid_from_bytes(value: bytes) -> uuid.UUID:
    """``uuid.UUID(bytes=value)`` without the argument checks: several times faster.

    For 16-byte values read back from a store (replays create one per event).
    """
    return _uuid_from_int(int.from_bytes(value, "big"))


def new_id() -> str:
    """A new aggregate id: a UUIDv7 in its canonical text form."""
    return str(uuid7())


def id_from_key(kind: str, key: str) -> str:
    """A stable id derived from a natural key (UUIDv5), e.g. one customer per e-mail address.

    The kind's length is part of the name, so ``("a:b", "c")`` and ``("a", "b:c")`` differ.
    """
    return str(uuid.uuid5(FACTA_NAMESPACE, f"{len(kind)}:{kind}:{key}"))


# The longest stream id, in UTF-8 bytes, on every backend alike (PostgreSQL's index of stream
# ids holds keys up to about 2,700 bytes; one limit everywhere keeps code tested on SQLite
# working in production).
MAX_STREAM_ID_BYTES = 1000


def validate_stream_id(stream_id: object) -> str:
    """Return ``stream_id`` if it is a usable stream id, else raise ``InvalidStreamId``.

    A stream id is a non-empty str that is not only whitespace, of at most
    ``MAX_STREAM_ID_BYTES`` UTF-8 bytes, without NUL or lone surrogates.
    """
    if not isinstance(stream_id, str):
        raise InvalidStreamId(
            f"stream id must be a str, got {type(stream_id).__name__} {stream_id!r}"
        )
    if not stream_id or stream_id.isspace():
        raise InvalidStreamId(f"stream id must not be empty or only whitespace, got {stream_id!r}")
    if (
        len(stream_id) > MAX_STREAM_ID_BYTES // 4
        and len(stream_id.encode("utf-8", "surrogatepass")) > MAX_STREAM_ID_BYTES
    ):
        raise InvalidStreamId(
            f"stream id {stream_id[:40]!r}... is {len(stream_id.encode('utf-8', 'surrogatepass')):,} "
            f"bytes long; the limit is {MAX_STREAM_ID_BYTES:,} bytes of UTF-8 on every backend"
        )
    if "\x00" in stream_id:
        raise InvalidStreamId(
            f"stream id {stream_id!r} contains a NUL character, which no backend can store"
        )
    if not stream_id.isascii():
        try:
            stream_id.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidStreamId(
                f"stream id {stream_id!r} is not valid Unicode (it holds a lone surrogate), "
                "which no backend can store"
            ) from None
    return stream_id
