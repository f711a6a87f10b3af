"""The ``eventsourcing`` package (9.5), used the way its documentation shows.

An ``Aggregate`` whose ``@event`` methods are its commands, an ``Application`` that saves and
gets it, persistence chosen by the ``PERSISTENCE_MODULE`` setting (POPO, SQLite, PostgreSQL)
and snapshots by ``snapshotting_intervals``.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from datetime import datetime
from decimal import Decimal
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import InfrastructureFactory, Tracking, TrackingRecorder
from eventsourcing.popo import POPOTrackingRecorder
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import ApplicationSubscription, Projection
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier

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


class TotalsView(TrackingRecorder):
    """W6's read model, per cart: how many items, what total quantity (one upsert per event)."""

    @abstractmethod
    def add_item(self, cart_id: UUID, quantity: int, tracking: Tracking) -> None:
        """Count an item and record the tracking object, atomically."""


class POPOTotalsView(POPOTrackingRecorder, TotalsView):
    def __init__(self) -> None:
        super().__init__()
        self.totals: dict[UUID, tuple[int, int]] = {}

    def add_item(self, cart_id: UUID, quantity: int, tracking: Tracking) -> None:
        with self._database_lock:
            self._assert_tracking_uniqueness(tracking)
            items, total = self.totals.get(cart_id, (0, 0))
            self.totals[cart_id] = (items + 1, total + quantity)
            self._insert_tracking(tracking)


_TOTALS = "CREATE TABLE IF NOT EXISTS {0}cart_totals (cart_id TEXT PRIMARY KEY, items INTEGER NOT NULL, quantity INTEGER NOT NULL)"
_UPSERT = (
    "INSERT INTO {0}cart_totals VALUES ({1}, 1, {1}) ON CONFLICT (cart_id) DO UPDATE SET"
    " items = cart_totals.items + 1, quantity = cart_totals.quantity + excluded.quantity"
)


class SQLiteTotalsView(SQLiteTrackingRecorder, TotalsView):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), _TOTALS.format("")]

    def add_item(self, cart_id: UUID, quantity: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(_UPSERT.format("", "?"), (str(cart_id), quantity))
            self._insert_tracking(c, tracking)


class PostgresTotalsView(PostgresTrackingRecorder, TotalsView):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(datastore.schema)
        self.sql_create_statements.append(SQL(_TOTALS.format("{0}.")).format(schema))
        self.upsert = SQL(_UPSERT.format("{0}.", "%s")).format(schema)

    def add_item(self, cart_id: UUID, quantity: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.upsert, (str(cart_id), quantity))
            self._insert_tracking(curs, tracking)


VIEWS: dict[str, type[TotalsView]] = {
    "memory": POPOTotalsView,
    "sqlite": SQLiteTotalsView,
    "postgres": PostgresTotalsView,
}


class TotalsProjection(Projection[TotalsView]):
    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register(vars(Cart)["Started"])  # the event classes @event made
    @process_event.register(vars(Cart)["ItemAdded"])
    def item_added(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.add_item(domain_event.originator_id, domain_event.quantity, tracking)


class Eventsourcing(SyncWorkloads):
    """One eventsourcing persistence module."""

    def __init__(self, sizes: Sizes, schema: str, backend: str) -> None:
        super().__init__(sizes, schema)
        self.backend = backend
        SnapshottingShop.snapshotting_intervals = {Cart: sizes.snapshot_every}
        self.app: Shop | None = None
        self.env_for_app: dict[str, str] = {}
        self.view: TotalsView | None = None
        self.view_factory: InfrastructureFactory[TotalsView] | None = None
        self.views = 0
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
        self.env_for_app = self.env()
        self.app = kind(env=self.env_for_app)
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
            # Built fast (saves of 1,000, no snapshots), then one snapshot each at `length`:
            # what every-100 snapshotting leaves behind, for loads to start from.
            SnapshottingShop.snapshotting_intervals = {}
            try:
                self.ids["W4-head"] = self._build(app, length, 1000)
                self.ids["W4-99"] = self._build(app, length + every - 1, 1000)
            finally:
                SnapshottingShop.snapshotting_intervals = {Cart: every}
            for aggregate_id in self.ids.values():
                app.take_snapshot(aggregate_id, version=length)
        elif group == "W6" and self.backend == "sqlite":
            return {"W6": "eventsourcing's SQLite recorder has no subscriptions for projections"}
        elif group in ("W5", "W6"):
            app = self.fresh_app(Shop)
            for _ in range(self.log_length(group) // self.sizes.save_size):
                self._build(app, self.sizes.save_size, self.sizes.save_size)
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
        if case == "W6":  # a fresh, empty view: its own tables (or dict), named per trial
            self.views += 1
            env = Environment(f"Totals{self.views}", {**self.env_for_app, "CREATE_TABLE": "y"})
            if self.view_factory is not None:
                self.view_factory.close()
            self.view_factory = InfrastructureFactory[TotalsView].construct(env)
            self.view = self.view_factory.tracking_recorder(VIEWS[self.backend])
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
        if case == "W6":
            return self._project(app)
        if case == "W7":
            return self._concurrent_writers(app)
        raise ValueError(case)

    def _project(self, app: Shop) -> int:
        """Catch up with the log, as eventsourcing's ProjectionRunner does (in its thread)."""
        assert self.view is not None
        projection = TotalsProjection(view=self.view)
        count = 0
        start = self.view.max_tracking_id(app.name)
        with ApplicationSubscription(app, gt=start) as subscription:
            for domain_event, tracking in subscription:
                projection.process_event(domain_event, tracking)
                count += 1
                if count == self.sizes.w6_events:
                    break
        return count

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
        if self.view_factory is not None:
            self.view_factory.close()
        self.close_app()
        if self.backend == "postgres":
            drop_schema(self.schema)
        self.remove_folder()


def make(sizes: Sizes, schema: str, backend: str) -> Eventsourcing:
    return Eventsourcing(sizes, schema, backend)
