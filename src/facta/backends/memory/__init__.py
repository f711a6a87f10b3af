"""The in-memory backend: for tests and examples; thread- and task-safe; nothing persists.

``memory://`` opens a new, empty store each time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facta.backends import Backend
from facta.errors import ConfigurationError

if TYPE_CHECKING:
    from facta.backends.memory.recorder import MemoryRecorder
    from facta.backends.memory.recorder_async import AsyncMemoryRecorder

__all__ = ["backend"]


def _check(url: str) -> None:
    if url.split("://", 1)[1]:
        raise ConfigurationError(
            f"a memory store's URL is memory:// with nothing after it; got {url!r}"
        )


def _recorder(url: str, *, read_only: bool = False) -> MemoryRecorder:
    from facta.backends.memory.recorder import MemoryRecorder

    _check(url)
    return MemoryRecorder(read_only=read_only)


def _async_recorder(url: str, *, read_only: bool = False) -> AsyncMemoryRecorder:
    from facta.backends.memory.recorder_async import AsyncMemoryRecorder

    _check(url)
    return AsyncMemoryRecorder(read_only=read_only)


backend = Backend(_recorder, _async_recorder, options=("read_only",))
