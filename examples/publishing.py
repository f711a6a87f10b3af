"""Events leave the store: a subscription follows the log, a relay publishes it to Redis.

Needs a Redis server at 127.0.0.1:6379 (``pip install 'facta[redis]'``).
"""

import asyncio
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio

import facta
from facta.publishing import Relay
from facta.publishing.redis import RedisBroker


@facta.event("OrderPlaced")
@dataclass(frozen=True)
class OrderPlaced:
    total: int


async def main(folder: Path) -> None:
    prefix = f"shop-{uuid.uuid4().hex[:8]}"  # this run's keys in Redis
    async with facta.connect_async(f"sqlite:///{folder / 'shop.db'}") as store:
        await store.append("order-1", [OrderPlaced(30)], facta.NO_STREAM)
        await store.append("order-2", [OrderPlaced(12)], facta.NO_STREAM)

        # A subscription: the log so far, then each new event as it commits.
        async with store.subscribe() as events:
            async for event in events:
                print("subscriber saw", event.stream_id, event.data)
                if event.stream_id == "order-2":
                    break

        # A relay: publishes each event, then moves its checkpoint (kept in Redis too,
        # written with the messages: Redis gets each event exactly once).
        broker = RedisBroker("redis://127.0.0.1:6379/0", prefix)
        async with Relay(store, broker, name="orders", prefix=prefix) as relay:
            print("relay published", await relay.catch_up(), "events")

    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    try:
        for _, fields in await client.xrange(f"{prefix}:events") or []:
            assert fields is not None
            print("redis holds", fields["subject"], fields["data"])
    finally:
        await client.delete(f"{prefix}:events", f"{prefix}:relay:orders")
        await client.aclose()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main(Path(folder)))
