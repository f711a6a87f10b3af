"""How fresh a read must be, where a store reads from replicas (``fresh=`` of the reads).

- ``False`` (the default): any replica will do, however far behind (the primary when the
  store has none);
- ``True``: the primary, which has every commit;
- an :class:`~facta.appending.AppendResult` (or its ``lsn``, a WAL position): a replica that
  has replayed that append's commit, waiting for one as the store's ``replica_timeout``
  says; for a result without an ``lsn`` (a store opened with ``commit_lsn=False``, an
  append in the caller's transaction, an idempotent retry) a replica that has replayed the
  primary's WAL as it is when the read starts (past that commit, if it was made before).

Stores without replicas read the same data whatever is asked.

>>> where(False), where(True), where(1234)
((None, False), (None, True), (1234, False))
>>> where(AppendResult("s", 1, 1)) == (NOW, False)
True
"""

from __future__ import annotations

from facta.appending import AppendResult

__all__ = ["NOW", "Fresh", "where"]

Fresh = bool | AppendResult | int
NOW = -1  # the WAL position to wait for: the primary's, when the read starts


def where(fresh: object) -> tuple[int | None, bool]:
    """``(lsn, primary)`` for a ``fresh=`` value: the WAL position to wait for, if any, and
    whether only the primary will do."""
    if isinstance(fresh, bool):
        return None, fresh
    if isinstance(fresh, AppendResult):
        return (NOW if fresh.lsn is None else fresh.lsn), False
    if isinstance(fresh, int) and fresh >= 0:
        return fresh, False
    raise TypeError(
        f"fresh= takes True (the primary), False (any replica), or an AppendResult or a WAL "
        f"position (int >= 0) to wait for; got {fresh!r}"
    )
