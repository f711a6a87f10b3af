"""Events cross to another service: a relay publishes the shop's events to Redis, and the billing
service's inbox applies them to a read model in its own store, each once, each stream in order.

Needs a Redis server at 127.0.0.1:6379 (``pip install 'facta[redis]'``).
"""

import asyncio
import sqlite3
import tempfile
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio

import facta
from facta.projections import Projection, handles
from facta.publishing import Inbox, Relay
from facta.publishing.redis import RedisBroker, RedisSource

REDIS = "redis://127.0.0.1:6379/0"


@facta.event("OrderPlaced")
@dataclass(frozen=True)
class OrderPlaced:
    total: int


class Revenue(Projection[sqlite3.Connection]):
    """The billing service's read model, in its own store's file."""

    name = "revenue"

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS revenue (order_id TEXT PRIMARY KEY, total INT)")

    @handles(OrderPlaced)
    def placed(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
        # Not idempotent on purpose: the inbox applies each event once.
        db.execute(
            "INSERT INTO revenue VALUES (?, ?) ON CONFLICT (order_id)"
            " DO UPDATE SET total = total + excluded.total",
            (event.stream_id, event.data.total),
        )


async def main(folder: Path, prefix: str) -> None:
    # The shop: its store, and relays publishing its events to Redis.
    async with facta.connect_async(f"sqlite:///{folder / 'shop.db'}") as shop:
        await shop.append("order-1", [OrderPlaced(30), OrderPlaced(5)], facta.NO_STREAM)
        await shop.append("order-2", [OrderPlaced(12)], facta.NO_STREAM)
        for name in ("orders", "orders-again"):  # two relays: every event published twice
            async with Relay(shop, RedisBroker(REDIS, prefix), name=name) as relay:
                print(name, "published", await relay.catch_up(), "events")

    # Billing: an inbox reads the stream (a consumer group named after the inbox) and
    # applies each event in a transaction of its store, with the streams' versions.
    async with facta.connect_async(f"sqlite:///{folder / 'billing.db'}") as billing:
        source = RedisSource(REDIS, prefix)
        async with Inbox(billing, Revenue(), source, name="revenue") as inbox:
            applied = await inbox.catch_up(idle=0.5)  # until nothing comes for 0.5 s
            print("inbox applied", applied, "events and dropped", inbox.duplicates, "repeats")
    with closing(sqlite3.connect(folder / "billing.db")) as db:
        print("revenue", db.execute("SELECT * FROM revenue ORDER BY order_id").fetchall())


async def clean_up(prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(REDIS)
    try:
        await client.delete(*[key async for key in client.scan_iter(match=f"{prefix}:*")])
    finally:
        await client.aclose()


if __name__ == "__main__":
    run = f"shop-{uuid.uuid4().hex[:8]}"  # this run's keys in Redis
    try:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(main(Path(folder), run))
    finally:
        asyncio.run(clean_up(run))
