"""Upcasters: pure ``dict -> dict`` steps that turn old stored versions into current ones.

A step is registered per (type name, from version) and yields version + 1 of the same type, or
(for a rename) any (type name, version). Chains run on read, before typed decoding. Events and
snapshots use the same mechanism, in two separate sets: event steps are keyed by event type
name and schema version, snapshot steps by aggregate type name and snapshot schema version.

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

__all__ = [
    "Upcaster",
    "Upcasters",
    "default_snapshot_upcasters",
    "default_upcasters",
    "snapshot_upcaster",
    "upcaster",
]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# A chain longer than this is taken to be a cycle (A v1 -> B v1 -> A v1 ...).
_MAX_CHAIN = 1000


class _Step(NamedTuple):
    function: Upcaster
    to_type: str
    to_version: int


class Upcasters:
    """A set of upcasting steps, keyed by the (type name, schema version) they read.

    ``decorator`` is the name error messages suggest for registering a missing step.
    """

    def __init__(self, decorator: str = "upcaster") -> None:
        self.decorator = decorator
        self._steps: dict[tuple[str, int], _Step] = {}
        self._names: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self._steps)

    def reads(self, type_name: str) -> bool:
        """Whether some step reads this type name."""
        return type_name in self._names

    def renamed_into(self, type_name: str) -> set[str]:
        """The stored type names that chains rename (in one or more steps) into this one.

        A reader that filters the log by type name must ask for these names too.
        """
        found: set[str] = set()
        targets = [type_name]
        while targets:
            target = targets.pop()
            for (name, _), step in self._steps.items():
                if step.to_type == target and name != type_name and name not in found:
                    found.add(name)
                    targets.append(name)
        return found

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
        if not isinstance(from_version, int) or isinstance(from_version, bool) or from_version < 1:
            raise ValueError(f"from_version of {type_name!r} must be an int >= 1: {from_version!r}")
        if to_version is not None and (not isinstance(to_version, int) or to_version < 1):
            raise ValueError(f"to_version of {type_name!r} must be an int >= 1: {to_version!r}")
        if not callable(function):
            raise TypeError(f"the upcaster for {type_name!r} must be callable: {function!r}")
        key = (type_name, from_version)
        if key in self._steps:
            raise ValueError(f"an upcaster for {type_name!r} version {from_version} already exists")
        if to_type is None:
            step = _Step(function, type_name, to_version or from_version + 1)
        else:
            step = _Step(function, to_type, to_version or 1)
        if step[1:] == key:
            raise ValueError(
                f"the upcaster for {type_name!r} version {from_version} leads to itself"
            )
        self._steps[key] = step
        self._names.add(type_name)

    def upcaster(
        self,
        type_name: str,
        from_version: int,
        *,
        to_type: str | None = None,
        to_version: int | None = None,
    ) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of :meth:`register`."""

        def add(function: Upcaster) -> Upcaster:
            self.register(type_name, from_version, function, to_type=to_type, to_version=to_version)
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
        record in error messages, which also name its stored type and schema version.
        """
        where = f"{where}type {type_name!r} schema version {version}: "
        for _ in range(_MAX_CHAIN):
            have = current(type_name)
            if version == have:
                return type_name, version, data
            step = self._steps.get((type_name, version))
            if step is None:
                raise UpcastError(where + self._missing(type_name, version, have))
            try:
                data = step.function(data)
            except Exception as e:
                raise UpcastError(
                    f"{where}upcaster {_name_of(step.function)} (from {type_name!r} version "
                    f"{version}) failed: {type(e).__name__}: {e}"
                ) from e
            if not isinstance(data, dict):
                raise UpcastError(
                    f"{where}upcaster {_name_of(step.function)} (from {type_name!r} version "
                    f"{version}) returned {type(data).__name__}, not a dict"
                )
            type_name, version = step.to_type, step.to_version
        raise UpcastError(f"{where}the upcaster chain loops (it ran {_MAX_CHAIN} steps)")

    def destination(self, type_name: str, version: int) -> str:
        """The type name a chain from (type_name, version) ends at, without running it."""
        for _ in range(_MAX_CHAIN):
            step = self._steps.get((type_name, version))
            if step is None:
                break
            type_name, version = step.to_type, step.to_version
        return type_name

    def _missing(self, type_name: str, version: int, have: int | None) -> str:
        hint = f"register one with @{self.decorator}({type_name!r}, {version})"
        if have is None:
            return (
                f"no upcaster reads {type_name!r} version {version}, and the code has no type "
                f"of that name; {hint}, with to_type= the type's new name"
            )
        if version > have:
            return (
                f"stored at version {version}, newer than version {have} in the code; run the "
                "code that wrote it"
            )
        return f"no upcaster from {type_name!r} version {version} (the code is at {have}); {hint}"


def _name_of(function: Upcaster) -> str:
    return repr(getattr(function, "__qualname__", function))


default_upcasters = Upcasters()
default_snapshot_upcasters = Upcasters("snapshot_upcaster")


def upcaster(
    type_name: str,
    from_version: int,
    *,
    to_type: str | None = None,
    to_version: int | None = None,
) -> Callable[[Upcaster], Upcaster]:
    """Register a step in the default set of event upcasters (see :class:`Upcasters`)."""
    return default_upcasters.upcaster(
        type_name, from_version, to_type=to_type, to_version=to_version
    )


def snapshot_upcaster(
    aggregate_type: str,
    from_version: int,
    *,
    to_type: str | None = None,
    to_version: int | None = None,
) -> Callable[[Upcaster], Upcaster]:
    """Register a step in the default set of snapshot upcasters.

    It reads the snapshot state (as a dict) of aggregate type ``aggregate_type`` written at
    snapshot schema version ``from_version``; ``to_type`` follows a renamed aggregate type.
    """
    return default_snapshot_upcasters.upcaster(
        aggregate_type, from_version, to_type=to_type, to_version=to_version
    )
