"""How far a hot standby trails the primary it streams from, as a reader of it sees it."""

from __future__ import annotations

from typing import NamedTuple

from facta.errors import format_lsn

__all__ = ["ReplicaLag"]


class ReplicaLag(NamedTuple):
    """How far one replica trails the primary.

    ``behind_bytes`` is the primary's WAL the replica has not replayed yet (reads there do
    not see it); ``behind_seconds`` how long ago the newest transaction the replica replayed
    committed, while it is behind (0.0 once it has replayed everything, None if it has
    replayed no transaction since it started). ``replayed_lsn`` is None when the server is
    not a standby. ``str()`` says it in one line.
    """

    replica: str
    behind_bytes: int
    behind_seconds: float | None
    replayed_lsn: int | None

    def __str__(self) -> str:
        if self.replayed_lsn is None:
            return f"replica {self.replica} is not a standby (it replays no WAL)"
        if self.behind_bytes <= 0:
            return f"replica {self.replica} has replayed everything the primary wrote"
        seconds = self.behind_seconds
        age = "" if seconds is None else f", {seconds:.1f} s"
        return (
            f"replica {self.replica} is {self.behind_bytes:,} bytes of WAL{age} behind the "
            f"primary (replayed up to {format_lsn(self.replayed_lsn)})"
        )
