"""The errors a projection runner raises on purpose, and its policy for failing handlers."""

from __future__ import annotations

import enum

from facta.errors import FactaError, ProjectionLocked
from facta.events import RecordedEvent

__all__ = ["OnError", "ProjectionError", "ProjectionLocked"]


class OnError(enum.Enum):
    """What a runner does when a handler raises."""

    STOP = "stop"  # raise ProjectionError; the checkpoint stays just before the event
    DEAD_LETTER = "dead-letter"  # park the event in the dead letters and go on


class ProjectionError(FactaError):
    """A handler raised: the projection stopped with its checkpoint just before that event.

    For an inline projection, the append that carried the event failed instead.
    """

    def __init__(
        self, projection: str, event: RecordedEvent, cause: BaseException, *, inline: bool = False
    ) -> None:
        self.projection, self.event, self.cause = projection, event, cause
        self.stream_id, self.version, self.position = event.stream_id, event.version, event.position
        self.type = event.type
        where = f"position {event.position}"
        if event.transaction_id:
            where += f" of transaction {event.transaction_id}"
        super().__init__(
            f"projection {projection!r} {'refused' if inline else 'stopped at'} event {event.type!r} (stream "
            f"{event.stream_id!r} version {event.version}, {where}): "
            f"{type(cause).__name__}: {cause}; "
            + (
                "the append was not written (inline projections commit with it)"
                if inline
                else "its checkpoint is left just before this event: fix the handler and start "
                "it again (or run it with on_error=OnError.DEAD_LETTER to park failing events)"
            )
        )
