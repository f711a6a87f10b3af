"""``Write``: a statement a handler returns instead of executing it, so that a runner can send a
batch's writes together (one ``executemany`` per run of the same SQL) rather than one by one.

A handler returns a :class:`Write` or a list of them; the runner queues them in event order
and sends them before anything that could see or follow them: a handler that uses the
connection (every handler not marked ``@handles(..., writes_only=True)``), and the batch's
checkpoint. Inline projections and inboxes execute returned writes at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Write", "runs", "writes_of"]


@dataclass(frozen=True, slots=True)
class Write:
    """One statement and its parameters, in the connection's own placeholder style
    (SQLite: ``?``; psycopg: ``%s``)."""

    sql: str
    params: Sequence[Any] | dict[str, Any] = ()


def writes_of(outcome: object) -> list[Write]:
    """The writes a handler returned: a ``Write``, a list or tuple of them; anything else
    (``None``, or what a handler returned before writes existed) is none."""
    if isinstance(outcome, Write):
        return [outcome]
    if isinstance(outcome, list | tuple) and outcome and isinstance(outcome[0], Write):
        for item in outcome:
            if not isinstance(item, Write):
                raise TypeError(
                    f"a handler returned a list of writes holding {item!r}; return only "
                    "facta.projections.Write objects in it"
                )
        return list(outcome)
    return []


def runs(writes: Sequence[Write]) -> Iterator[tuple[str, list[Any]]]:
    """Consecutive writes of the same SQL, as ``(sql, [params, ...])``: one ``executemany``
    each, in order."""
    start = 0
    for end in range(1, len(writes) + 1):
        if end == len(writes) or writes[end].sql != writes[start].sql:
            yield writes[start].sql, [write.params for write in writes[start:end]]
            start = end
