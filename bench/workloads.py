"""The interface every benchmarked system implements, sync or async.

A worker process holds one system for one workload group: ``setup`` builds what the reading
cases read (untimed) and says which cases the system can run; before each timed ``run`` the
worker calls ``prepare`` (untimed: fresh stores for the writing cases).
"""

from __future__ import annotations

import abc
import shutil
import tempfile
from pathlib import Path

from bench.model import Fields, Sizes, field_pool


class Unavailable(Exception):
    """Raised by ``setup`` when the system cannot run the group at all; the message says why."""


class Base:
    """State every system shares: sizes, the event fields, a private temporary folder."""

    def __init__(self, sizes: Sizes, schema: str) -> None:
        self.sizes = sizes
        self.schema = schema  # the PostgreSQL schema this worker may create and drop
        self.pool: list[Fields] = field_pool()
        self.folder = Path(tempfile.mkdtemp(prefix="facta-bench-"))
        self._files = 0

    def fields(self, i: int) -> Fields:
        return self.pool[i % len(self.pool)]

    def new_file(self) -> Path:
        """A path for a new SQLite file, in this worker's temporary folder."""
        self._files += 1
        return self.folder / f"{self._files}.db"

    def remove_folder(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_length(self, group: str) -> int:
        """How many events W5 (or W6) stores in its global log, in streams of ``save_size``."""
        return self.sizes.w6_events if group == "W6" else self.sizes.w5_events

    def loads_per_trial(self, case: str) -> int:
        """How many loads one trial of a loading case times (the result is per load)."""
        if case.startswith("W3-"):
            return max(1, self.sizes.load_events_per_trial // int(case[3:]))
        return self.sizes.w4_loads


class SyncWorkloads(Base, abc.ABC):
    @abc.abstractmethod
    def setup(self, group: str) -> dict[str, str]:
        """Build what ``group``'s cases need; ``case -> ""`` when ready, else why not."""

    def prepare(self, case: str) -> None:
        """Untimed, before each trial."""

    @abc.abstractmethod
    def run(self, case: str) -> int | list[float]:
        """One timed trial; returns how many units (events, or loads for ms cases) it did,
        or, for a p99 case, each unit's duration in seconds."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything, drop schemas and files."""


class AsyncWorkloads(Base, abc.ABC):
    @abc.abstractmethod
    async def setup(self, group: str) -> dict[str, str]:
        """Build what ``group``'s cases need; ``case -> ""`` when ready, else why not."""

    async def prepare(self, case: str) -> None:
        """Untimed, before each trial."""

    @abc.abstractmethod
    async def run(self, case: str) -> int | list[float]:
        """One timed trial; returns how many units it did (or, for a p99 case, their
        durations in seconds)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything, drop schemas and files."""


Workloads = SyncWorkloads | AsyncWorkloads


def drop_schema(schema: str) -> None:
    """Drop a PostgreSQL schema and everything in it (a no-op when it does not exist)."""
    import psycopg

    from bench.model import POSTGRES_URL

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def create_schema(schema: str) -> None:
    """A fresh, empty PostgreSQL schema."""
    import psycopg

    from bench.model import POSTGRES_URL

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
