"""What ``facta projections`` shows about each projection (the values live in facta.records)."""

from facta.records import (
    FAILED,
    REBUILDING,
    RUNNING,
    STOPPED,
    DeadLetter,
    Progress,
    ProjectionStatus,
    shown_state,
)

__all__ = [
    "FAILED",
    "REBUILDING",
    "RUNNING",
    "STOPPED",
    "DeadLetter",
    "Progress",
    "ProjectionStatus",
    "shown_state",
]
