"""The SQLite backend: the embedded default, one file in WAL mode.

URLs: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, or
``sqlite:///:memory:`` (a private database that lives as long as the store). Options:

``timeout``
    seconds a call waits for another connection's write lock (default 30).
``synchronous``
    how surely an acknowledged write is on the disk: ``"FULL"`` (the default) syncs the WAL
    file at every commit, so an append that returned survives a power cut or an operating
    system crash; ``"NORMAL"`` syncs only at checkpoints, which makes small commits several
    times faster, and an append that returned survives the process being killed but may be
    lost, with the appends after it, when the machine loses power (the file stays intact).
    Projection runners' connections use the store's setting.
``migrate``
    apply pending migrations on opening (default True); with False nothing is applied and
    every call raises ``SchemaVersionError`` until ``recorder.migrate()`` (or ``facta migrate
    URL``) brings the schema up to date.
``create``
    create the file and facta's tables when missing (default True); with False a missing file,
    or one holding no facta store, raises ``NotAFactaStore`` and nothing is created or changed.
``read_only``
    open the file through SQLite's ``mode=ro``, so nothing can be written or created (default
    False); implies ``create=False`` and ``migrate=False``.

facta's tables are all named ``facta_...`` (see :mod:`facta.backends.sqlite.schema`), so the
file may also hold an application's own tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facta.backends import Backend
from facta.errors import ConfigurationError

if TYPE_CHECKING:
    from facta.backends.sqlite.recorder import SQLiteRecorder
    from facta.backends.sqlite.recorder_async import AsyncSQLiteRecorder

__all__ = ["backend"]

# The values of the ``synchronous`` option: SQLite's PRAGMA synchronous, in WAL mode.
_SYNCHRONOUS = ("FULL", "NORMAL")


def _check(
    url: str,
    timeout: object,
    synchronous: object,
    migrate: object,
    create: object,
    read_only: object,
) -> tuple[str, str]:
    """The file a ``sqlite:///...`` URL names, and the ``synchronous`` setting (upper case);
    ``ConfigurationError`` for a bad URL or option."""
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest == "/":
        raise ConfigurationError(
            f"a SQLite URL names its file after three slashes: sqlite:///relative.db, "
            f"sqlite:////absolute/path.db or sqlite:///:memory:; got {url!r}"
        )
    path = rest[1:]
    if "?" in path:
        raise ConfigurationError(
            f"a SQLite URL takes no query parameters (give options to connect instead, e.g. "
            f"read_only=True); got {url!r}"
        )
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ConfigurationError(f"timeout is a number of seconds >= 0, got {timeout!r}")
    if not isinstance(synchronous, str) or synchronous.upper() not in _SYNCHRONOUS:
        raise ConfigurationError(
            f"synchronous is {' or '.join(map(repr, _SYNCHRONOUS))} (how surely an acknowledged "
            f"write survives a power cut), got {synchronous!r}"
        )
    for name, value in (("migrate", migrate), ("create", create), ("read_only", read_only)):
        if not isinstance(value, bool):
            raise ConfigurationError(f"{name} is True or False, got {value!r}")
    return path, synchronous.upper()


def _recorder(
    url: str,
    *,
    timeout: float = 30.0,
    synchronous: str = "FULL",
    migrate: bool = True,
    create: bool = True,
    read_only: bool = False,
) -> SQLiteRecorder:
    from facta.backends.sqlite.recorder import SQLiteRecorder

    path, synchronous = _check(url, timeout, synchronous, migrate, create, read_only)
    return SQLiteRecorder(
        path,
        timeout=timeout,
        synchronous=synchronous,
        migrate=migrate,
        create=create,
        read_only=read_only,
        url=url,
    )


def _async_recorder(
    url: str,
    *,
    timeout: float = 30.0,
    synchronous: str = "FULL",
    migrate: bool = True,
    create: bool = True,
    read_only: bool = False,
) -> AsyncSQLiteRecorder:
    from facta.backends.sqlite.recorder_async import AsyncSQLiteRecorder

    path, synchronous = _check(url, timeout, synchronous, migrate, create, read_only)
    return AsyncSQLiteRecorder(
        path,
        timeout=timeout,
        synchronous=synchronous,
        migrate=migrate,
        create=create,
        read_only=read_only,
        url=url,
    )


backend = Backend(
    _recorder,
    _async_recorder,
    options=("timeout", "synchronous", "migrate", "create", "read_only"),
)
