# WARNING: generated from src/facta/slice_leases_async.py by tools/gen_sync.py; do not edit.
"""The leases of a sliced projection: the backend interface (sync twin generated).

A sliced projection is split into slice ranges (:func:`facta.slices.split_slices`), each
with its own checkpoint. Worker processes register under the projection's name with a
heartbeat, and each holds a fair share of the ranges (ceil(ranges / live workers)) under a
lease: an expiry its holder renews, and a fencing token that goes up whenever the range
changes hands. A worker moves a range's checkpoint only in the transaction that writes the
read model, and only while the token is still the one it took: a worker whose lease was taken
over has its commit refused (``LeaseLost``), so it never writes after losing a range.
"""

from __future__ import annotations

import abc
from typing import Any

from facta.recorder import Checkpoints
from facta.records import HeldRange, SlicedStatus

__all__ = ["SliceLeases"]


class SliceLeases(Checkpoints):
    """One worker's view of a sliced projection's leases (not yet opened).

    Beyond the checkpoints' interface: :meth:`open` joins the workers (a shared hold on the
    projection: a plain runner of the same name is refused meanwhile), :meth:`start` records
    the projection and its ranges, :meth:`save` moves every held range's checkpoint (guarded
    by its token), :meth:`reset` puts every range back at the start of the log and takes them
    from their holders, :meth:`lag` counts the events of the held ranges not applied yet.
    """

    worker: str  #: this worker's id, unique among the projection's workers
    ranges: int  #: how many slice ranges the projection is split into
    ttl: float  #: seconds a lease (and the heartbeat) lasts unless renewed
    #: The ranges this worker holds, by first slice, as of the last balance or save.
    holding: list[HeldRange]

    @abc.abstractmethod
    def balance(self) -> None:
        """Renew the heartbeat and the held leases; give back the ranges above this worker's
        share and take free or expired ones up to it. ``holding`` then says what it holds."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give back every held range and leave the projection's workers (a clean stop)."""

    @abc.abstractmethod
    def lock_all(self, connection: Any) -> None:
        """In the open transaction: lock every range, waiting for the workers' batches in
        hand (a rebuild does this before it empties the read model)."""

    @abc.abstractmethod
    def lock_setup(self, connection: Any) -> None:
        """In the open transaction: wait until no other worker runs the projection's
        ``setup`` (its ``CREATE TABLE IF NOT EXISTS`` would race)."""

    @abc.abstractmethod
    def status(self) -> SlicedStatus:
        """The projection's state, live workers and ranges (holders, tokens, checkpoints)."""
