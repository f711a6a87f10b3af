"""Upcasters: pure ``dict -> dict`` steps that turn old stored event versions into current ones.

A step is registered per (type name, from version) and yields version + 1 of the same type, or
(for a rename) any (type name, version). Chains run on read, before typed decoding.

>>> casts = Upcasters()
>>> @casts.upcaster("Deposited", 1)
... def add_currency(data):
...     return {**data, "currency": "EUR"}
>>> casts.upcast("Deposited", 1, {"amount": 5}, current=lambda name: 2)
('Deposited', 2, {'amount': 5, 'currency': 'EUR'})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from facta.errors import UpcastError

__all__ = ["Upcaster", "Upcasters", "default_upcasters", "upcaster"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# A chain longer than this is taken to be a cycle (A v1 -> B v1 -> A v1 ...).
_MAX_CHAIN = 1000


class _Step(NamedTuple):
    function: Upcaster
    to_type: str
    to_version: int


class Upcasters:
    """A set of upcasting steps, keyed by the (type name, schema version) they read."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], _Step] = {}

    def __bool__(self) -> bool:
        return bool(self._steps)

    def reads(self, type_name: str) -> bool:
        """Whether some step reads events of this type name."""
        return any(name == type_name for name, _ in self._steps)

    def register(
        self,
        type_name: str,
        from_version: int,
        function: Upcaster,
        *,
        to_type: str | None = None,
        to_version: int | None = None,
    ) -> None:
        """Add the step that reads ``type_name`` at ``from_version``.

        By default it produces ``from_version + 1`` of the same type; ``to_type`` renames the
        type (its version then defaults to 1).
        """
        key = (type_name, from_version)
        if key in self._steps:
            raise ValueError(f"an upcaster for {type_name!r} version {from_version} already exists")
        if to_type is None:
            step = _Step(function, type_name, to_version or from_version + 1)
        else:
            step = _Step(function, to_type, to_version or 1)
        self._steps[key] = step

    def upcaster(
        self, type_name: str, from_version: int, *, to_type: str | None = None
    ) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of :meth:`register`."""

        def add(function: Upcaster) -> Upcaster:
            self.register(type_name, from_version, function, to_type=to_type)
            return function

        return add

    def upcast(
        self,
        type_name: str,
        version: int,
        data: dict[str, Any],
        current: Callable[[str], int | None],
        where: str = "",
    ) -> tuple[str, int, dict[str, Any]]:
        """Run the chain from (type_name, version) until ``current(type name)`` is reached.

        ``current`` gives the version the code has for a type name (None if the type is not
        in the code: only a rename step can go on from there). ``where`` names the stored
        event for error messages.
        """
        for _ in range(_MAX_CHAIN):
            if version == current(type_name):
                return type_name, version, data
            step = self._steps.get((type_name, version))
            if step is None:
                have = current(type_name)
                wanted = "an unknown type" if have is None else f"version {have} in the code"
                raise UpcastError(
                    f"{where}type {type_name!r} schema version {version}: no upcaster from "
                    f"version {version} (the chain must reach {wanted}); register one with "
                    f"@upcaster({type_name!r}, {version})"
                )
            try:
                data = step.function(data)
            except Exception as e:
                raise UpcastError(
                    f"{where}type {type_name!r} schema version {version}: upcaster "
                    f"{getattr(step.function, '__qualname__', step.function)!r} failed: "
                    f"{type(e).__name__}: {e}"
                ) from e
            if not isinstance(data, dict):
                raise UpcastError(
                    f"{where}type {type_name!r} schema version {version}: upcaster returned "
                    f"{type(data).__name__}, not a dict"
                )
            type_name, version = step.to_type, step.to_version
        raise UpcastError(f"{where}type {type_name!r}: upcaster chain loops")


default_upcasters = Upcasters()


def upcaster(
    type_name: str, from_version: int, *, to_type: str | None = None
) -> Callable[[Upcaster], Upcaster]:
    """Register a step in the default set of event upcasters (see :class:`Upcasters`)."""
    return default_upcasters.upcaster(type_name, from_version, to_type=to_type)
