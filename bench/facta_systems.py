"""facta, used the way its documentation shows: an Aggregate, a Repository, a store URL."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import facta
from bench.model import POSTGRES_URL, Fields, Sizes, field_pool
from bench.workloads import AsyncWorkloads, SyncWorkloads, Unavailable, drop_schema


@facta.event("bench.ItemAdded")
@dataclass(frozen=True)
class ItemAdded:
    item_id: UUID
    name: str
    quantity: int
    price: Decimal
    at: datetime
    tags: list[str]


class Cart(facta.Aggregate):
    """The benchmark aggregate: counts its items and sums their quantities."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.items = 0
        self.quantity = 0

    def add_item(self, fields: Fields) -> None:
        self.record(ItemAdded(*fields))

    def apply(self, event: object) -> None:
        match event:
            case ItemAdded(quantity=quantity):
                self.items += 1
                self.quantity += quantity


@dataclass(frozen=True)
class CartState:
    items: int
    quantity: int


class SnapshottedCart(Cart):
    """The same aggregate with automatic snapshots (``snapshot_every`` is set per run)."""

    snapshot_every = 100
    snapshot_type = CartState

    def snapshot_state(self) -> CartState:
        return CartState(self.items, self.quantity)

    def restore_state(self, state: CartState) -> None:
        self.items = state.items
        self.quantity = state.quantity


class BigCart(SnapshottedCart):
    """W4-1M-*: snapshots every ``w4_big_every`` events (set per run), and, where facta has
    the trigger, after a load that replayed more than a few events (its replay cost)."""

    snapshot_every = 1000


# W4-1M-any: a load that replayed this many events or more writes a snapshot (facta's
# trigger by replay cost, where it has one): steady loads then replay fewer than this.
REPLAY_TRIGGER = 100


def replay_trigger_support() -> bool:
    """Whether this facta snapshots by replay cost (detected)."""
    return hasattr(facta.Aggregate, "snapshot_after_replaying")


def big_streams_support(backend: str) -> dict[str, str]:
    """W4-1M-*: the memory store is left out: it would hold 2,000,000 more events, and its W4
    loads would then be timed in a heap ten times the previous release's (its goals are the
    databases')."""
    why = "memory: two 1,000,000-event streams would dwarf W4's heap" if backend == "memory" else ""
    return {"W4-1M-head": why, "W4-1M-any": why}


def _configure_big_cart(sizes: Sizes) -> None:
    BigCart.snapshot_every = sizes.w4_big_every
    if replay_trigger_support():
        BigCart.snapshot_after_replaying = REPLAY_TRIGGER  # type: ignore[attr-defined,unused-ignore]


def _url(backend: str, base: Any, schema: str) -> str:
    if backend == "memory":
        return "memory://"
    if backend.startswith("sqlite"):
        return f"sqlite:///{base.new_file()}"
    return f"{POSTGRES_URL}?schema={schema}"


def _options(backend: str) -> dict[str, Any]:
    """facta's default is synchronous = FULL; sqlite-normal measures the opt-in NORMAL."""
    return {"synchronous": "NORMAL"} if backend == "sqlite-normal" else {}


def backend_support(backend: str) -> None:
    """Raise ``Unavailable`` when this facta has no such backend (detected, not assumed)."""
    if backend == "postgres" and importlib.util.find_spec("facta.backends.postgres") is None:
        raise Unavailable("facta has no PostgreSQL backend yet")


def snapshot_support() -> str:
    """'' when facta's repository takes snapshots automatically, else why not (detected)."""
    with facta.connect("memory://") as store:
        repo = facta.Repository(store, SnapshottedCart)
        cart = SnapshottedCart()
        for fields in field_pool(SnapshottedCart.snapshot_every or 1):
            cart.add_item(fields)
        repo.save(cart)
        if not store.read_snapshots(cart.id):
            return "facta takes no automatic snapshots yet"
    return ""


def projection_support() -> str:
    """'' when facta has catch-up projections, else why not (detected)."""
    if importlib.util.find_spec("facta.projections.runner_async") is None:
        return "facta has no projections yet"
    return ""


_TOTALS = (
    "CREATE TABLE IF NOT EXISTS cart_totals"
    " (cart_id TEXT PRIMARY KEY, items INTEGER NOT NULL, quantity INTEGER NOT NULL)"
)
_UPSERT = (
    "INSERT INTO cart_totals VALUES ({mark}, 1, {mark}) ON CONFLICT (cart_id) DO UPDATE SET"
    " items = cart_totals.items + 1, quantity = cart_totals.quantity + excluded.quantity"
)


def projection(backend: str, is_async: bool, batched: bool = True) -> Any:
    """The W6 read model, per cart: how many items, what total quantity. One upsert per event,
    returned as a ``Write`` (the runner sends a batch's with ``executemany``) or, not
    ``batched``, executed by the handler."""
    from facta.projections import AsyncProjection, Projection, Write, handles

    class CartTotals(Projection[Any]):
        name = "bench-cart-totals"
        pipelined = True  # on PostgreSQL: the handlers only write (ignored elsewhere)
        upsert = _UPSERT.format(mark="%s" if backend == "postgres" else "?")
        totals: ClassVar[dict[str, tuple[int, int]]] = {}  # the memory store's read model

        def setup(self, db: Any) -> None:
            if db is not None:
                db.execute(_TOTALS)

        def reset(self, db: Any) -> None:
            if db is None:
                self.totals.clear()
            else:
                db.execute("DELETE FROM cart_totals")

        @handles(ItemAdded, writes_only=True)
        def added(self, event: facta.RecordedEvent, db: Any) -> Write | None:
            if db is None:
                items, quantity = self.totals.get(event.stream_id, (0, 0))
                self.totals[event.stream_id] = (items + 1, quantity + event.data.quantity)
                return None
            if not batched:
                db.execute(self.upsert, (event.stream_id, event.data.quantity))
                return None
            return Write(self.upsert, (event.stream_id, event.data.quantity))

    class AsyncCartTotals(AsyncProjection[Any]):
        name = "bench-cart-totals"
        pipelined = True
        upsert = CartTotals.upsert

        async def setup(self, db: Any) -> None:
            await db.execute(_TOTALS)

        async def reset(self, db: Any) -> None:
            await db.execute("DELETE FROM cart_totals")

        @handles(ItemAdded, writes_only=True)
        async def added(self, event: facta.RecordedEvent, db: Any) -> Write | None:
            if not batched:
                await db.execute(self.upsert, (event.stream_id, event.data.quantity))
                return None
            return Write(self.upsert, (event.stream_id, event.data.quantity))

    return AsyncCartTotals() if is_async and backend == "postgres" else CartTotals()


def _wait_for_horizon(store: Any, seconds: float = 120) -> None:
    """Wait until ``read_all`` can see every event: on PostgreSQL it returns only events of
    transactions older than every open one in the cluster, and this server is shared. The
    PostgreSQL extras (``wait_until_readable``, ``reader_lag``) are on the store's recorder."""
    recorder = store.recorder
    if not recorder.wait_until_readable(seconds):
        lag = recorder.reader_lag()
        raise RuntimeError(f"read_all is held back by an open transaction: {lag}")


async def _wait_for_horizon_async(store: Any, seconds: float = 120) -> None:
    """The async twin of :func:`_wait_for_horizon`."""
    recorder = store.recorder
    if not await recorder.wait_until_readable(seconds):
        lag = await recorder.reader_lag()
        raise RuntimeError(f"read_all is held back by an open transaction: {lag}")


class FactaSync(SyncWorkloads):
    """A sync facta store on one backend."""

    def __init__(self, sizes: Sizes, schema: str, backend: str) -> None:
        super().__init__(sizes, schema)
        self.backend = backend
        SnapshottedCart.snapshot_every = sizes.snapshot_every
        _configure_big_cart(sizes)
        self.trials = 0
        self.store: facta.EventStore | None = None
        self.ids: dict[str, str] = {}
        self.writers: list[Cart] = []
        self.runner: Any = None  # W6's ProjectionRunner, opened before each trial

    def fresh_store(self) -> facta.EventStore:
        if self.store is not None:
            self.store.close()
        if self.backend == "postgres":
            drop_schema(self.schema)
        self.store = facta.connect(_url(self.backend, self, self.schema), **_options(self.backend))
        return self.store

    def setup(self, group: str) -> dict[str, str]:
        backend_support(self.backend)
        store = self.fresh_store()
        status = {}
        if group in ("W2", "W4"):
            status["W2-snap"] = status["W4-head"] = status["W4-99"] = snapshot_support()
        if group == "W3":
            repo = facta.Repository(store, Cart)
            for length in self.sizes.w3_lengths:
                self.ids[f"W3-{length}"] = self._build(repo, Cart(), length, 1000)
        elif group == "W4" and not status["W4-head"]:
            repo = facta.Repository(store, SnapshottedCart)
            length, every = self.sizes.w4_length, self.sizes.snapshot_every
            self.ids["W4-head"] = self._build(repo, SnapshottedCart(), length, every)
            self.ids["W4-99"] = self._build(repo, SnapshottedCart(), length + every - 1, every)
            status.update(big_streams_support(self.backend))
            if not status["W4-1M-head"]:
                big = facta.Repository(store, BigCart)
                length, every = self.sizes.w4_big_length, self.sizes.w4_big_every
                self.ids["W4-1M-head"] = self._build(big, BigCart(), length, every)
                self.ids["W4-1M-any"] = self._build(big, BigCart(), length, every)
        elif group in ("W5", "W6"):
            if group == "W6" and projection_support():
                return dict.fromkeys(("W6", "W6-statements"), projection_support())
            repo = facta.Repository(store, Cart)
            for _ in range(self.log_length(group) // self.sizes.save_size):
                self._build(repo, Cart(), self.sizes.save_size, self.sizes.save_size)
        return status

    def _build(self, repo: facta.Repository[Any], cart: Cart, length: int, save: int) -> str:
        for i in range(length):
            cart.add_item(self.fields(i))
            if len(cart.pending_events) == save:
                repo.save(cart)
        repo.save(cart)
        return cart.id

    def prepare(self, case: str) -> None:
        if case in ("W5", "W6", "W6-statements") and self.backend == "postgres":
            _wait_for_horizon(self.store)
        if case in ("W6", "W6-statements"):
            from facta.projections import ProjectionRunner

            if self.runner is not None:
                self.runner.close()
            assert self.store is not None
            batched = case == "W6"
            self.runner = ProjectionRunner(self.store, projection(self.backend, False, batched))
            self.runner.open()
        if case in ("W1", "W2", "W2-snap", "W7"):
            store = self.fresh_store()
        if case == "W7":
            repo = facta.Repository(store, Cart)
            self.writers = [Cart() for _ in range(self.sizes.w7_writers)]
            for i, cart in enumerate(self.writers):
                cart.add_item(self.fields(i))
                repo.save(cart)

    def run(self, case: str) -> int | list[float]:
        store = self.store
        assert store is not None
        sizes = self.sizes
        if case == "W4-1M-any":
            return self._loads_behind(facta.Repository(store, BigCart), self.ids[case])
        if case == "W1":
            repo = facta.Repository(store, Cart)
            for i in range(sizes.w1_aggregates):
                cart = Cart()
                cart.add_item(self.fields(i))
                repo.save(cart)
            return sizes.w1_aggregates
        if case in ("W2", "W2-snap"):
            kind = Cart if case == "W2" else SnapshottedCart
            repo = facta.Repository(store, kind)
            self._build(repo, kind(), sizes.w2_events, sizes.save_size)
            return sizes.w2_events
        if case.startswith(("W3-", "W4-")):
            kind = Cart if case.startswith("W3") else SnapshottedCart
            kind = BigCart if case.startswith("W4-1M") else kind
            repo = facta.Repository(store, kind)
            loads = self.loads_per_trial(case)
            for _ in range(loads):
                cart = repo.load(self.ids[case])
            assert cart.items == cart.version
            return loads
        if case == "W5":
            count = sum(1 for _ in store.read_all())
            assert count == sizes.w5_events, count
            return count
        if case in ("W6", "W6-statements"):
            count = self.runner.rebuild()
            assert count == sizes.w6_events, count
            return int(count)
        if case == "W7":
            return self._concurrent_writers(store)
        raise ValueError(case)

    def _loads_behind(self, repo: facta.Repository[Any], stream_id: str) -> list[float]:
        """Update cycles: load (timed), record 1-20 events, save (untimed); each load's time.

        Saves leave the head anywhere behind the newest snapshot (every-N snapshots), so the
        loads replay between 0 and N - 1 events unless facta snapshots by replay cost too.
        """
        self.trials += 1
        draw = random.Random(self.trials)
        times = []
        for cycle in range(self.sizes.w4_any_loads):
            started = time.perf_counter()
            cart = repo.load(stream_id)
            times.append(time.perf_counter() - started)
            assert cart.items == cart.version
            for i in range(draw.randint(1, 20)):
                cart.add_item(self.fields(cycle + i))
            repo.save(cart)
        return times

    def _concurrent_writers(self, store: facta.EventStore) -> int:
        start = threading.Barrier(len(self.writers))

        def write(cart: Cart) -> None:
            repo = facta.Repository(store, Cart)
            start.wait()
            for i in range(self.sizes.w7_saves):
                cart.add_item(self.fields(i))
                repo.save(cart)

        threads = [threading.Thread(target=write, args=(cart,)) for cart in self.writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(self.writers) * self.sizes.w7_saves

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        if self.store is not None:
            self.store.close()
        if self.backend == "postgres":
            drop_schema(self.schema)
        self.remove_folder()


class FactaAsync(AsyncWorkloads):
    """An async facta store on one backend."""

    def __init__(self, sizes: Sizes, schema: str, backend: str) -> None:
        super().__init__(sizes, schema)
        self.backend = backend
        SnapshottedCart.snapshot_every = sizes.snapshot_every
        _configure_big_cart(sizes)
        self.trials = 0
        self.store: facta.AsyncEventStore | None = None
        self.ids: dict[str, str] = {}
        self.writers: list[Cart] = []
        self.runner: Any = None  # W6's AsyncProjectionRunner, opened before each trial

    async def fresh_store(self) -> facta.AsyncEventStore:
        if self.store is not None:
            await self.store.close()
        if self.backend == "postgres":
            drop_schema(self.schema)
        self.store = facta.connect_async(
            _url(self.backend, self, self.schema), **_options(self.backend)
        )
        await self.store.__aenter__()
        return self.store

    async def setup(self, group: str) -> dict[str, str]:
        backend_support(self.backend)
        store = await self.fresh_store()
        status = {}
        if group in ("W2", "W4"):
            status["W2-snap"] = status["W4-head"] = status["W4-99"] = snapshot_support()
        if group == "W3":
            repo = facta.AsyncRepository(store, Cart)
            for length in self.sizes.w3_lengths:
                self.ids[f"W3-{length}"] = await self._build(repo, Cart(), length, 1000)
        elif group == "W4" and not status["W4-head"]:
            repo = facta.AsyncRepository(store, SnapshottedCart)
            length, every = self.sizes.w4_length, self.sizes.snapshot_every
            self.ids["W4-head"] = await self._build(repo, SnapshottedCart(), length, every)
            self.ids["W4-99"] = await self._build(
                repo, SnapshottedCart(), length + every - 1, every
            )
            status.update(big_streams_support(self.backend))
            if not status["W4-1M-head"]:
                big = facta.AsyncRepository(store, BigCart)
                length, every = self.sizes.w4_big_length, self.sizes.w4_big_every
                self.ids["W4-1M-head"] = await self._build(big, BigCart(), length, every)
                self.ids["W4-1M-any"] = await self._build(big, BigCart(), length, every)
        elif group in ("W5", "W6"):
            if group == "W6" and projection_support():
                return dict.fromkeys(("W6", "W6-statements"), projection_support())
            repo = facta.AsyncRepository(store, Cart)
            for _ in range(self.log_length(group) // self.sizes.save_size):
                await self._build(repo, Cart(), self.sizes.save_size, self.sizes.save_size)
        return status

    async def _build(
        self, repo: facta.AsyncRepository[Any], cart: Cart, length: int, save: int
    ) -> str:
        for i in range(length):
            cart.add_item(self.fields(i))
            if len(cart.pending_events) == save:
                await repo.save(cart)
        await repo.save(cart)
        return cart.id

    async def prepare(self, case: str) -> None:
        if case in ("W5", "W6", "W6-statements") and self.backend == "postgres":
            await _wait_for_horizon_async(self.store)
        if case in ("W6", "W6-statements"):
            from facta.projections import AsyncProjectionRunner

            if self.runner is not None:
                await self.runner.close()
            assert self.store is not None
            batched = case == "W6"
            self.runner = AsyncProjectionRunner(self.store, projection(self.backend, True, batched))
            await self.runner.open()
        if case in ("W1", "W2", "W2-snap", "W7"):
            store = await self.fresh_store()
        if case == "W7":
            repo = facta.AsyncRepository(store, Cart)
            self.writers = [Cart() for _ in range(self.sizes.w7_writers)]
            for i, cart in enumerate(self.writers):
                cart.add_item(self.fields(i))
                await repo.save(cart)

    async def run(self, case: str) -> int | list[float]:
        store = self.store
        assert store is not None
        sizes = self.sizes
        if case == "W4-1M-any":
            return await self._loads_behind(facta.AsyncRepository(store, BigCart), self.ids[case])
        if case == "W1":
            repo = facta.AsyncRepository(store, Cart)
            for i in range(sizes.w1_aggregates):
                cart = Cart()
                cart.add_item(self.fields(i))
                await repo.save(cart)
            return sizes.w1_aggregates
        if case in ("W2", "W2-snap"):
            kind = Cart if case == "W2" else SnapshottedCart
            repo = facta.AsyncRepository(store, kind)
            await self._build(repo, kind(), sizes.w2_events, sizes.save_size)
            return sizes.w2_events
        if case.startswith(("W3-", "W4-")):
            kind = Cart if case.startswith("W3") else SnapshottedCart
            kind = BigCart if case.startswith("W4-1M") else kind
            repo = facta.AsyncRepository(store, kind)
            loads = self.loads_per_trial(case)
            for _ in range(loads):
                cart = await repo.load(self.ids[case])
            assert cart.items == cart.version
            return loads
        if case == "W5":
            count = 0
            async for _ in store.read_all():
                count += 1
            assert count == sizes.w5_events, count
            return count
        if case in ("W6", "W6-statements"):
            count = await self.runner.rebuild()
            assert count == sizes.w6_events, count
            return int(count)
        if case == "W7":
            repo = facta.AsyncRepository(store, Cart)

            async def write(cart: Cart) -> None:
                for i in range(sizes.w7_saves):
                    cart.add_item(self.fields(i))
                    await repo.save(cart)

            await asyncio.gather(*(write(cart) for cart in self.writers))
            return len(self.writers) * sizes.w7_saves
        raise ValueError(case)

    async def _loads_behind(self, repo: facta.AsyncRepository[Any], stream_id: str) -> list[float]:
        """The async twin of :meth:`FactaSync._loads_behind`."""
        self.trials += 1
        draw = random.Random(self.trials)
        times = []
        for cycle in range(self.sizes.w4_any_loads):
            started = time.perf_counter()
            cart = await repo.load(stream_id)
            times.append(time.perf_counter() - started)
            assert cart.items == cart.version
            for i in range(draw.randint(1, 20)):
                cart.add_item(self.fields(cycle + i))
            await repo.save(cart)
        return times

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.close()
        if self.store is not None:
            await self.store.close()
        if self.backend == "postgres":
            drop_schema(self.schema)
        self.remove_folder()


def make(sizes: Sizes, schema: str, backend: str, is_async: bool) -> FactaSync | FactaAsync:
    if is_async:
        return FactaAsync(sizes, schema, backend)
    return FactaSync(sizes, schema, backend)
