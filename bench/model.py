"""What every system benchmarks alike: the event's fields, the workload sizes, the cases.

Each system (a library on a backend) implements the same cases with the same event: six
fields of the kinds real events carry (a UUID, a short string, an int, a decimal, a datetime
and a short list).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple


class Fields(NamedTuple):
    """The six fields of one benchmark event, in the same order for every system."""

    item_id: uuid.UUID
    name: str
    quantity: int
    price: Decimal
    at: datetime
    tags: list[str]


def field_pool(size: int = 1000) -> list[Fields]:
    """Pre-made event fields, cycled through by every workload (making them is not timed)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return [
        Fields(
            uuid.uuid4(),
            f"item-{i % 97}",
            i % 7 + 1,
            Decimal(f"{i % 50}.{i % 100:02d}"),
            start + timedelta(seconds=i),
            ["red", "large"] if i % 2 else ["blue"],
        )
        for i in range(size)
    ]


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Workload sizes; the defaults make a full run take about ten minutes on two cores."""

    w1_aggregates: int = 5000
    w2_events: int = 20_000
    save_size: int = 100  # events per save in W2, W4 and W5 setup
    snapshot_every: int = 100
    w3_lengths: tuple[int, ...] = (1000, 10_000, 100_000)
    w4_length: int = 100_000
    w5_events: int = 100_000
    w6_events: int = (
        20_000  # W6 reads a log of its own, shorter: eventsourcing on PostgreSQL is slow
    )
    w7_writers: int = 4
    w7_saves: int = 500  # per writer
    load_events_per_trial: int = 10_000  # W3: loads per trial = this // length (at least 1)
    w4_loads: int = 20
    # W4-1M-*: facta's loads of a long aggregate snapshotted every w4_big_every events
    w4_big_length: int = 1_000_000
    w4_big_every: int = 1000
    w4_any_loads: int = 200  # W4-1M-any: update cycles per trial (its p99 is the figure)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sizes:
        data = dict(data)
        data["w3_lengths"] = tuple(data["w3_lengths"])
        return cls(**data)


QUICK = Sizes(
    w1_aggregates=100,
    w2_events=1000,
    w3_lengths=(100, 1000),
    w4_length=1000,
    w5_events=2000,
    w6_events=1000,
    w7_saves=50,
    load_events_per_trial=2000,
    w4_loads=5,
    w4_big_length=5000,
    w4_big_every=100,
    w4_any_loads=20,
)


class Case(NamedTuple):
    """One measured thing. ``unit`` is ``events/s`` (higher is better) or ``ms`` (lower).

    ``p99``: the trial times each unit (a system's ``run`` returns their durations) and its
    figure is the 99th percentile of them, not the mean.
    """

    id: str
    group: str
    title: str
    unit: str
    p99: bool = False
    facta_only: bool = False  # no baseline runs it: facta's own goal, not a comparison


def cases(sizes: Sizes) -> list[Case]:
    """Every case, in report order."""
    found = [
        Case(
            "W1",
            "W1",
            f"W1 {sizes.w1_aggregates:,} new aggregates, 1 event, 1 save each",
            "events/s",
        ),
        Case("W2", "W2", f"W2 {sizes.w2_events:,} events, saves of {sizes.save_size}", "events/s"),
        Case("W2-snap", "W2", f"W2 same, snapshot every {sizes.snapshot_every}", "events/s"),
    ]
    found += [
        Case(f"W3-{n}", "W3", f"W3 load {n:,}-event aggregate", "ms") for n in sizes.w3_lengths
    ]
    found += [
        Case("W4-head", "W4", f"W4 load {sizes.w4_length:,} events, snapshot at head", "ms"),
        Case("W4-99", "W4", "W4 same, snapshot 99 events behind", "ms"),
        Case(
            "W4-1M-head",
            "W4",
            f"W4 load {sizes.w4_big_length:,} events, snapshot at head (facta only)",
            "ms",
            facta_only=True,
        ),
        Case(
            "W4-1M-any",
            "W4",
            f"W4 p99 of {sizes.w4_any_loads} loads of a {sizes.w4_big_length:,}-event aggregate,"
            f" 1-20 events saved between loads, snapshots every {sizes.w4_big_every:,} and by"
            " replay cost (facta only)",
            "ms",
            p99=True,
            facta_only=True,
        ),
        Case("W5", "W5", f"W5 read all {sizes.w5_events:,} events, decoded", "events/s"),
        Case("W6", "W6", f"W6 catch-up projection of {sizes.w6_events:,} events", "events/s"),
        Case(
            "W6-statements",
            "W6",
            "W6 same, each handler executing its upsert instead of returning it (facta only)",
            "events/s",
            facta_only=True,
        ),
        Case("W7", "W7", f"W7 {sizes.w7_writers} writers x {sizes.w7_saves:,} saves", "events/s"),
    ]
    return found


class System(NamedTuple):
    """A library on a backend: ``library`` is facta, facta-0.1 (the previous release, run from
    its own source and benchmark, see bench/previous.py), eventsourcing or raw."""

    name: str
    library: str
    backend: str  # memory, sqlite (synchronous = FULL), sqlite-normal, postgres, postgres-bare,
    # postgres-asyncpg
    is_async: bool


SYSTEMS = [
    System("facta-memory", "facta", "memory", False),
    System("facta-memory-async", "facta", "memory", True),
    System("facta-sqlite", "facta", "sqlite", False),
    System("facta-sqlite-async", "facta", "sqlite", True),
    System("facta-sqlite-normal", "facta", "sqlite-normal", False),
    System("facta-postgres", "facta", "postgres", False),
    System("facta-postgres-async", "facta", "postgres", True),
    System("facta-memory-0.1", "facta-0.1", "memory", False),
    System("facta-memory-0.1-async", "facta-0.1", "memory", True),
    System("es-popo", "eventsourcing", "memory", False),
    System("es-sqlite", "eventsourcing", "sqlite", False),
    System("es-postgres", "eventsourcing", "postgres", False),
    System("raw-sqlite3", "raw", "sqlite", False),
    System("raw-sqlite3-normal", "raw", "sqlite-normal", False),
    System("raw-psycopg", "raw", "postgres", False),
    System("raw-psycopg-async", "raw", "postgres", True),
    # W1's second floor: the same INSERT into a table of the same columns with no key or index
    System("raw-psycopg-bare", "raw", "postgres-bare", False),
    System("raw-psycopg-async-bare", "raw", "postgres-bare", True),
    # asyncpg beside psycopg: shown for comparison; the goals keep psycopg as their baseline
    System("raw-asyncpg", "raw", "postgres-asyncpg", True),
]

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
