"""Projections: read models fed from the global log, exactly once where the database allows.

A projection is a class with one ``@handles(EventClass)`` method per event type it cares about
(see :class:`Projection`). A runner feeds it after its checkpoint, in batches, committing the
read model and the checkpoint together (:class:`ProjectionRunner`); an inline projection is
updated in the append's own transaction (:func:`add_inline`); several worker processes can share one, each holding some of its slice
ranges (:class:`SlicedRunner`, PostgreSQL).
"""

from facta.projections.errors import OnError, ProjectionError, ProjectionLocked
from facta.projections.handlers import handles
from facta.projections.inline import add_inline, add_inline_async
from facta.projections.projection import Projection
from facta.projections.projection_async import AsyncProjection
from facta.projections.runner import ProjectionRunner
from facta.projections.runner_async import AsyncProjectionRunner
from facta.projections.sliced_runner import SlicedRunner
from facta.projections.sliced_runner_async import AsyncSlicedRunner
from facta.projections.status import DeadLetter, ProjectionStatus
from facta.projections.statuses import statuses
from facta.projections.statuses_async import statuses_async
from facta.projections.write import Write

__all__ = [
    "AsyncProjection",
    "AsyncProjectionRunner",
    "AsyncSlicedRunner",
    "DeadLetter",
    "OnError",
    "Projection",
    "ProjectionError",
    "ProjectionLocked",
    "ProjectionRunner",
    "ProjectionStatus",
    "SlicedRunner",
    "Write",
    "add_inline",
    "add_inline_async",
    "handles",
    "statuses",
    "statuses_async",
]
