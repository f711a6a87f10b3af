"""A PostgreSQL store's settings: its URL split into libpq's part and the schema, options checked.

Pure values; nothing here connects. ``location`` names the store in messages (host, port,
database and schema), never a user or a password.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from facta.errors import ConfigurationError

__all__ = ["DEFAULT_SCHEMA", "MAX_NAME_BYTES", "Settings", "check_schema_name", "split_url"]

DEFAULT_SCHEMA = "public"
MAX_NAME_BYTES = 63  # PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1)


@dataclass(frozen=True)
class Settings:
    """Where a store is and how it is opened (see ``facta.backends.postgres`` for the options)."""

    conninfo: str
    schema: str
    location: str
    pool_size: int
    pool_timeout: float
    lock_timeout: float  # seconds; 0 waits as long as it takes
    migrate: bool
    create: bool
    read_only: bool
    # Hot standbys the store reads from: (conninfo, location) each, in the order given.
    replicas: tuple[tuple[str, str], ...] = ()
    replica_timeout: float = 5.0  # how long a fresh= read waits for a replica to replay
    replica_fallback: bool = False  # past it, read the primary instead of raising
    commit_lsn: bool = True  # appends fetch their commit's WAL position (with replicas)

    @classmethod
    def parse(
        cls,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        lock_timeout: float | None = 5.0,
        migrate: bool | None = None,
        create: bool | None = None,
        read_only: bool = False,
        replicas: Sequence[str] = (),
        replica_timeout: float = 5.0,
        replica_fallback: bool = False,
        commit_lsn: bool = True,
    ) -> Settings:
        """Check ``url`` and the options; ``ConfigurationError`` saying which one is wrong."""
        conninfo, name = split_url(url, schema)
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.Error:  # the message may quote the URL, password included
            raise ConfigurationError("not a valid PostgreSQL URL (libpq cannot parse it)") from None
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise ConfigurationError(f"pool_size must be an int >= 1, got {pool_size!r}")
        if (
            not isinstance(pool_timeout, (int, float))
            or isinstance(pool_timeout, bool)
            or not math.isfinite(pool_timeout)
            or pool_timeout <= 0
        ):
            raise ConfigurationError(
                f"pool_timeout must be a number of seconds > 0, got {pool_timeout!r}"
            )
        if lock_timeout is not None and (
            not isinstance(lock_timeout, (int, float))
            or isinstance(lock_timeout, bool)
            or not math.isfinite(lock_timeout)
            or lock_timeout < 0
        ):
            raise ConfigurationError(
                f"lock_timeout must be a number of seconds >= 0 (0 or None: no limit), "
                f"got {lock_timeout!r}"
            )
        if not isinstance(read_only, bool):
            raise ConfigurationError(f"read_only must be True or False, got {read_only!r}")
        for option, value in (("migrate", migrate), ("create", create)):  # None: the default
            if value is not None and not isinstance(value, bool):
                raise ConfigurationError(f"{option} must be True or False, got {value!r}")
        if read_only and create:
            raise ConfigurationError(
                "read_only=True opens an existing store and creates nothing; drop create=True"
            )
        if read_only and migrate:
            raise ConfigurationError(
                "read_only=True never migrates; drop migrate=True (`facta migrate URL` upgrades "
                "a store)"
            )
        standbys = _replicas(replicas, name)
        if not _seconds(replica_timeout, 0):
            raise ConfigurationError(
                f"replica_timeout must be a number of seconds >= 0, got {replica_timeout!r}"
            )
        if not isinstance(commit_lsn, bool):
            raise ConfigurationError(f"commit_lsn must be True or False, got {commit_lsn!r}")
        if not isinstance(replica_fallback, bool):
            raise ConfigurationError(
                f"replica_fallback must be True or False, got {replica_fallback!r}"
            )
        return cls(
            conninfo,
            name,
            _location(params, name),
            pool_size,
            float(pool_timeout),
            float(lock_timeout or 0),
            migrate=not read_only if migrate is None else migrate,
            create=not read_only if create is None else create,
            read_only=read_only,
            replicas=standbys,
            replica_timeout=float(replica_timeout),
            replica_fallback=replica_fallback,
            commit_lsn=commit_lsn,
        )


def _replicas(urls: object, schema: str) -> tuple[tuple[str, str], ...]:
    """Each replica URL as (conninfo, location); a replica holds the primary's schema."""
    if isinstance(urls, str) or not isinstance(urls, Sequence):
        raise ConfigurationError(
            f"replicas takes a list of PostgreSQL URLs (hot standbys), got {urls!r}"
        )
    found = []
    for url in urls:
        conninfo, named = split_url(url, None)
        if named not in (schema, DEFAULT_SCHEMA):
            raise ConfigurationError(
                f"replica URL names schema {named!r}, but a replica holds the primary's schema "
                f"{schema!r}: drop ?schema= from it"
            )
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.Error:  # the message may quote the URL, password included
            raise ConfigurationError("a replica URL is not valid (libpq cannot parse it)") from None
        found.append((conninfo, _location(params, schema)))
    return tuple(found)


def _seconds(value: object, least: float) -> bool:
    """Whether ``value`` is a finite number of seconds >= ``least``."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= least
    )


def split_url(url: str, schema: str | None = None) -> tuple[str, str]:
    """``(conninfo for libpq, schema name)``: a ``?schema=`` parameter leaves the URL.

    The ``schema`` argument wins over the URL's parameter; the default is ``public``.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a PostgreSQL URL is a str, got {type(url).__name__}")
    conninfo, from_url = url, None
    if "://" in url:
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        names = [value for key, value in params if key == "schema"]
        if names:
            from_url = names[-1]
            query = urlencode([(k, v) for k, v in params if k != "schema"], quote_via=quote)
            conninfo = urlunsplit(parts._replace(query=query))
    name = schema if schema is not None else from_url or DEFAULT_SCHEMA
    return conninfo, check_schema_name(name)


def check_schema_name(name: object) -> str:
    """``name`` if PostgreSQL can hold it as a schema name unchanged, else ``ConfigurationError``."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ConfigurationError(f"schema name must be a non-empty str without NUL, got {name!r}")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ConfigurationError(
            f"schema name {name!r} is longer than PostgreSQL's {MAX_NAME_BYTES} bytes"
        )
    return name


def _location(params: dict[str, Any], schema: str) -> str:
    """``postgresql://host:port/database?schema=name``: no user, no password."""
    host = str(params.get("host") or "localhost")
    port = str(params.get("port") or "5432")
    database = str(params.get("dbname") or "")
    return f"postgresql://{quote(host, safe=',')}:{port}/{quote(database)}?schema={quote(schema)}"
