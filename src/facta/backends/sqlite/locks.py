"""A lock on a file that the operating system drops when its holder dies, even by SIGKILL.

SQLite has no advisory locks, so a projection over a SQLite file is kept to one runner by an
exclusive lock on a small file beside the database.
"""

from __future__ import annotations

import os
import sys

__all__ = ["FileLock"]


class FileLock:
    """An exclusive, non-blocking lock on ``path`` (created if missing, never deleted)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock if it is free; False if another holder (any process) has it."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Let go of the lock (closing the file releases it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def held_elsewhere(self) -> bool:
        """Whether someone else holds the lock right now (a momentary probe)."""
        if self._fd is not None or not os.path.exists(self.path):
            return False
        if self.acquire():
            self.release()
            return False
        return True


if sys.platform == "win32":  # pragma: no cover (CI runs on Linux)
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
