"""The ``eventsourcing`` package (9.5), used the way its documentation shows.

An ``Aggregate`` whose ``@event`` methods are its commands, an ``Application`` that saves and
gets it, persistence chosen by the ``PERSISTENCE_MODULE`` setting (POPO, SQLite, PostgreSQL)
and snapshots by ``snapshotting_intervals``.
"""

from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.model import Sizes
from bench.workloads import SyncWorkloads, create_schema, drop_schema


class Cart(Aggregate):
    """The benchmark aggregate: counts its items and sums their quantities."""

    @event("Started")
    def __init__(
        self,
        item_id: UUID,
        name: str,
        quantity: int,
        price: Decimal,
        at: datetime,
        tags: list[str],
    ) -> None:
        self.items = 1
        self.quantity = quantity

    @event("ItemAdded")
    def add_item(
        self,
        item_id: UUID,
        name: str,
        quantity: int,
        price: Decimal,
        at: datetime,
        tags: list[str],
    ) -> None:
        self.items += 1
        self.quantity += quantity


class Shop(Application[UUID]):
    log_section_size = 1000  # lets notification_log.select() return pages of 1,000


class SnapshottingShop(Shop):
    snapshotting_intervals = {Cart: 100}  # noqa: RUF012 (the documented class attribute)


class Eventsourcing(SyncWorkloads):
    """One eventsourcing persistence module."""

    def __init__(self, sizes: Sizes, schema: str, backend: str) -> None:
        super().__init__(sizes, schema)
        self.backend = backend
        SnapshottingShop.snapshotting_intervals = {Cart: sizes.snapshot_every}
        self.app: Shop | None = None
        self.ids: dict[str, UUID] = {}
        self.writers: list[Cart] = []

    def env(self) -> dict[str, str]:
        if self.backend == "memory":
            return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        if self.backend == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.new_file()),
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": "test",
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": "5432",
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD": "",
            "POSTGRES_SCHEMA": self.schema,
        }

    def fresh_app(self, kind: type[Shop]) -> Shop:
        """An application of ``kind`` on a fresh, empty database."""
        self.close_app()
        if self.backend == "postgres":
            create_schema(self.schema)
        self.app = kind(env=self.env())
        return self.app

    def close_app(self) -> None:
        if self.app is not None:
            self.app.close()
        self.app = None

    def setup(self, group: str) -> dict[str, str]:
        if group == "W3":
            app = self.fresh_app(Shop)
            for length in self.sizes.w3_lengths:
                self.ids[f"W3-{length}"] = self._build(app, length, 1000)
        elif group == "W4":
            app = self.fresh_app(SnapshottingShop)
            length, every = self.sizes.w4_length, self.sizes.snapshot_every
            self.ids["W4-head"] = self._build(app, length, every)
            self.ids["W4-99"] = self._build(app, length + every - 1, every)
        elif group == "W5":
            app = self.fresh_app(Shop)
            for _ in range(self.sizes.w5_events // self.sizes.save_size):
                self._build(app, self.sizes.save_size, self.sizes.save_size)
        elif group == "W6":
            return {"W6": "not measured until facta has projections"}
        return {}

    def _build(self, app: Shop, length: int, save: int) -> UUID:
        cart = Cart(*self.fields(0))
        for i in range(1, length):
            if len(cart.pending_events) == save:
                app.save(cart)
            cart.add_item(*self.fields(i))
        app.save(cart)
        return cart.id

    def prepare(self, case: str) -> None:
        if case in ("W1", "W2", "W7"):
            app = self.fresh_app(Shop)
        elif case == "W2-snap":
            self.fresh_app(SnapshottingShop)
        if case == "W7":
            self.writers = [Cart(*self.fields(i)) for i in range(self.sizes.w7_writers)]
            app.save(*self.writers)

    def run(self, case: str) -> int:
        app = self.app
        assert app is not None
        sizes = self.sizes
        if case == "W1":
            for i in range(sizes.w1_aggregates):
                app.save(Cart(*self.fields(i)))
            return sizes.w1_aggregates
        if case in ("W2", "W2-snap"):
            self._build(app, sizes.w2_events, sizes.save_size)
            return sizes.w2_events
        if case.startswith(("W3-", "W4-")):
            loads = self.loads_per_trial(case)
            for _ in range(loads):
                cart: Any = app.repository.get(self.ids[case])
            assert cart.items == cart.version
            return loads
        if case == "W5":
            return self._read_all(app)
        if case == "W7":
            return self._concurrent_writers(app)
        raise ValueError(case)

    def _read_all(self, app: Shop) -> int:
        count, start = 0, 1
        to_domain_event = app.mapper.to_domain_event
        while True:
            notifications = app.notification_log.select(start, app.log_section_size)
            for notification in notifications:
                to_domain_event(notification)
            count += len(notifications)
            if len(notifications) < app.log_section_size:
                break
            start = notifications[-1].id + 1
        assert count == self.sizes.w5_events, count
        return count

    def _concurrent_writers(self, app: Shop) -> int:
        start = threading.Barrier(len(self.writers))

        def write(cart: Cart) -> None:
            start.wait()
            for i in range(self.sizes.w7_saves):
                cart.add_item(*self.fields(i))
                app.save(cart)

        threads = [threading.Thread(target=write, args=(cart,)) for cart in self.writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(self.writers) * self.sizes.w7_saves

    def close(self) -> None:
        self.close_app()
        if self.backend == "postgres":
            drop_schema(self.schema)
        self.remove_folder()


def make(sizes: Sizes, schema: str, backend: str) -> Eventsourcing:
    return Eventsourcing(sizes, schema, backend)
