"""The event classes the contract suite writes, registered under ``facta.testing.*`` names.

Their type names start with ``facta.testing.`` so they never collide with an application's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from facta.events import event

__all__ = [
    "Happened",
    "Measured",
    "Mismatched",
    "Noted",
    "Opaque",
    "Projected",
    "Unregistered",
]


@event("facta.testing.Happened")
class Happened(msgspec.Struct, frozen=True):
    """A numbered event: ``n`` tells events apart in assertions."""

    n: int
    note: str = ""


@event("facta.testing.Projected")
class Projected(msgspec.Struct, frozen=True):
    """What the contract's projections read, and no other test writes: a projection on a
    shared store then reads little besides its own test's events."""

    n: int


@event("facta.testing.Noted", version=2)
@dataclass(frozen=True)
class Noted:
    """A dataclass event at schema version 2, so stored schema versions are not all 1."""

    text: str


@event("facta.testing.Measured")
@dataclass(frozen=True)
class Measured:
    """A float-valued event: NaN and infinity have no JSON form."""

    value: float


@event("facta.testing.Opaque")
@dataclass(frozen=True)
class Opaque:
    """Carries any value: hands the codec something it may not be able to encode."""

    value: Any


class Mismatched(msgspec.Struct, frozen=True):
    """Not registered by default: claims ``Happened``'s type name in a private registry,
    with a field type that ``Happened``'s stored data does not decode into."""

    n: str


@dataclass(frozen=True)
class Unregistered:
    """An event class nobody registered: appending it must fail."""

    text: str
