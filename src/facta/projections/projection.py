# WARNING: generated from src/facta/projections/projection_async.py by tools/gen_sync.py; do not edit.
"""The projection base class; its sync twin is generated from this module.

A sync projection's methods are plain functions (``def``): coroutine functions on one are
refused when the class is defined, since nothing would await them. An async projection's may
be either. The example in :mod:`facta.projections.handlers` shows a whole projection.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from facta.projections.handlers import check_methods, handler_table, handles

__all__ = ["Projection", "handles"]

C = TypeVar("C")


class Projection(Generic[C]):
    """A read model fed from the global log, one ``@handles(EventClass)`` method per event type.

    ``name`` (stable, short) keys the projection's checkpoint: renaming the class is harmless,
    renaming ``name`` starts the projection over. Handlers get ``(event, connection)``: the
    connection of the store's database, in the transaction that also moves the checkpoint, so
    each event's effect happens exactly once (SQLite: ``sqlite3.Connection``; PostgreSQL: the
    psycopg connection). With the memory store ``connection`` is None and delivery is
    at-least-once: handlers must then be idempotent. Events of other types are never decoded.

    ``pipelined = True`` lets a runner on PostgreSQL send a batch's handler statements in
    psycopg's pipeline mode: they stop waiting for one another's results, so a batch costs
    about one round trip instead of one per statement. Set it only for handlers that read no
    statement's outcome before the batch ends other than by fetching rows (in pipeline mode
    ``cursor.rowcount`` is -1 until then). A statement that fails is still pinned on its event:
    the runner rolls the batch back and runs it again without the pipeline. Other backends
    ignore it.
    """

    name: str
    handler_names: ClassVar[dict[type, str]] = {}
    pipelined: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.handler_names = handler_table(cls)
        check_methods(cls, asynchronous=False)

    def setup(self, connection: C) -> None:
        """Create the read model (tables, indexes) if it is missing; runs before any event."""

    def reset(self, connection: C) -> None:
        """Empty the read model, before a rebuild replays the log into it."""
        raise NotImplementedError(
            f"projection {type(self).__qualname__} has no reset(); define one that empties its "
            "read model so that it can be rebuilt"
        )
