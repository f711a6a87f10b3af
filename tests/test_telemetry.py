"""OpenTelemetry spans and metrics (facta.telemetry), read back from the SDK's in-memory
exporter and metric reader, on every backend."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import facta
from facta import telemetry
from facta.context import TRACEPARENT
from facta.projections import Projection, ProjectionError, ProjectionRunner, handles
from facta.publishing import Broker, Message, Relay


@facta.event("test.telemetry.Opened")
@dataclass(frozen=True)
class Opened:
    owner: str


@facta.event("test.telemetry.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


@dataclass(frozen=True)
class Balance:
    amount: int


class Account(facta.Aggregate):
    snapshot_every = 3
    snapshot_type = Balance

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.balance = 0

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount))

    def apply(self, event: object) -> None:
        if isinstance(event, Deposited):
            self.balance += event.amount

    def snapshot_state(self) -> Balance:
        return Balance(self.balance)

    def restore_state(self, state: Balance) -> None:
        self.balance = state.amount


class Telemetry:
    """The providers facta is configured with, and what they caught."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = self.exporter.get_finished_spans()
        return [span for span in spans if name is None or span.name == name]

    def span(self, name: str) -> ReadableSpan:
        (span,) = self.spans(name)
        return span

    def points(self, name: str) -> list[Any]:
        """The data points of metric ``name`` collected now (none if it has none)."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    caught = Telemetry()
    telemetry.configure(
        tracer_provider=caught.tracer_provider, meter_provider=caught.meter_provider
    )
    yield caught
    telemetry.configure()
    caught.tracer_provider.shutdown()
    caught.meter_provider.shutdown()


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


DB_SYSTEM = {"memory": "memory", "sqlite": "sqlite", "postgres": "postgresql"}


# -- appends --------------------------------------------------------------------------------


def test_an_append_is_a_client_span_naming_stream_types_count_and_version(
    store: facta.EventStore, backend: str, otel: Telemetry
) -> None:
    store.append("acc-1", [Opened("ada"), Deposited(5), Deposited(7)], facta.NO_STREAM)
    span = otel.span("facta.append")
    assert span.kind is SpanKind.CLIENT
    assert attributes(span) == {
        "db.system": DB_SYSTEM[backend],
        "facta.stream_id": "acc-1",
        "facta.event_types": ("test.telemetry.Deposited", "test.telemetry.Opened"),
        "facta.event_count": 3,
        "facta.version": 3,
        "facta.already_appended": False,
    }
    (point,) = otel.points("facta.append.duration")
    assert point.count == 1
    assert dict(point.attributes) == {"db.system": DB_SYSTEM[backend]}


async def test_an_async_append_is_a_span_too(
    async_store: facta.AsyncEventStore, backend: str, otel: Telemetry
) -> None:
    await async_store.append("acc-1", [Opened("ada")], facta.NO_STREAM)
    assert attributes(otel.span("facta.append"))["db.system"] == DB_SYSTEM[backend]


def test_an_append_to_several_streams_names_them_all(
    store: facta.EventStore, otel: Telemetry
) -> None:
    store.append_many(
        [
            facta.StreamAppend("acc-1", [Opened("ada")], facta.NO_STREAM),
            facta.StreamAppend("acc-2", [Opened("bob")], facta.NO_STREAM),
        ]
    )
    found = attributes(otel.span("facta.append"))
    assert found["facta.stream_ids"] == ("acc-1", "acc-2")
    assert found["facta.event_count"] == 2
    assert "facta.stream_id" not in found


def test_a_refused_append_is_an_error_span_and_an_error_measurement(
    store: facta.EventStore, backend: str, otel: Telemetry
) -> None:
    store.append("acc-1", [Opened("ada")], facta.NO_STREAM)
    with pytest.raises(facta.ConcurrencyError):
        store.append("acc-1", [Opened("bob")], facta.NO_STREAM)
    refused = otel.spans("facta.append")[1]
    assert refused.status.status_code is StatusCode.ERROR
    assert attributes(refused)["error.type"] == "ConcurrencyError"
    assert [event.name for event in refused.events] == ["exception"]
    by_error = {
        p.attributes.get("error.type"): p.count for p in otel.points("facta.append.duration")
    }
    assert by_error == {None: 1, "ConcurrencyError": 1}


# -- the trace an event was appended in -------------------------------------------------------


def test_an_event_appended_in_a_request_span_carries_the_append_span_s_traceparent(
    store: facta.EventStore, otel: Telemetry
) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("POST /accounts") as request:
        store.append("acc-1", [Opened("ada")], facta.NO_STREAM)
    (event,) = store.read_stream("acc-1")
    version, trace_id, span_id, flags = event.metadata.user[TRACEPARENT].split("-")
    append = otel.span("facta.append")
    assert append.parent is not None
    assert append.parent.span_id == request.get_span_context().span_id
    assert (version, flags) == ("00", f"{append.context.trace_flags:02x}")
    assert int(trace_id, 16) == request.get_span_context().trace_id
    assert int(span_id, 16) == append.context.span_id


def test_an_event_appended_while_facta_only_measures_gets_no_traceparent(
    memory_store: facta.EventStore,
) -> None:
    caught = Telemetry()
    telemetry.configure(meter_provider=caught.meter_provider)  # no tracer provider anywhere
    try:
        with caught.tracer_provider.get_tracer("app").start_as_current_span("job"):
            memory_store.append("acc-1", [Opened("ada")], facta.NO_STREAM)
    finally:
        telemetry.configure()
    (event,) = memory_store.read_stream("acc-1")
    assert event.metadata == facta.Metadata()
    assert [s.name for s in caught.spans()] == ["job"]
    assert len(caught.points("facta.append.duration")) == 1


def test_an_event_appended_outside_any_span_gets_no_traceparent(
    memory_store: facta.EventStore,
) -> None:
    memory_store.append("acc-1", [Opened("ada")], facta.NO_STREAM)
    (event,) = memory_store.read_stream("acc-1")
    assert event.metadata == facta.Metadata()


def test_a_traceparent_in_explicit_metadata_wins(store: facta.EventStore, otel: Telemetry) -> None:
    mine = facta.Metadata(user={TRACEPARENT: "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    store.append("acc-1", [facta.NewEvent(Opened("ada"), metadata=mine)], facta.NO_STREAM)
    (event,) = store.read_stream("acc-1")
    assert event.metadata == mine


def test_switched_off_facta_neither_traces_nor_stamps_events(
    memory_store: facta.EventStore,
) -> None:
    caught = Telemetry()
    telemetry.configure(enabled=False)
    try:
        with caught.tracer_provider.get_tracer("app").start_as_current_span("job"):
            memory_store.append("acc-1", [Opened("ada")], facta.NO_STREAM)
    finally:
        telemetry.configure()
    (event,) = memory_store.read_stream("acc-1")
    assert event.metadata == facta.Metadata()
    assert caught.spans() == [caught.span("job")]


@pytest.fixture
def memory_store() -> Iterator[facta.EventStore]:
    with facta.connect("memory://") as store:
        yield store


# -- repositories ---------------------------------------------------------------------------


def test_load_save_and_snapshot_are_spans_with_the_counts_metrics_need(
    store: facta.EventStore, backend: str, otel: Telemetry
) -> None:
    accounts = facta.Repository(store, Account)
    account = Account()
    for amount in (1, 2):
        account.deposit(amount)
    accounts.save(account)  # 2 events: no snapshot yet
    accounts.load(account.id)  # a miss: 2 events replayed
    accounts.update(account.id, lambda a: a.deposit(3))  # a miss, then a snapshot at 3
    accounts.load(account.id)  # a hit: nothing replayed

    save = otel.spans("facta.save")[0]
    assert save.kind is SpanKind.INTERNAL
    assert attributes(save) == {
        "db.system": DB_SYSTEM[backend],
        "facta.stream_id": account.id,
        "facta.aggregate_type": "Account",
        "facta.event_count": 2,
        "facta.event_types": ("test.telemetry.Deposited",),
        "facta.version": 2,
    }
    first_append = otel.spans("facta.append")[0]
    assert first_append.parent is not None
    assert first_append.parent.span_id == save.context.span_id

    loads = otel.spans("facta.load")
    assert [attributes(s)["facta.event_count"] for s in loads] == [2, 2, 0]
    assert [attributes(s)["facta.snapshot.hit"] for s in loads] == [False, False, True]
    assert attributes(loads[-1])["facta.version"] == 3

    snapshot = otel.span("facta.snapshot")
    assert attributes(snapshot)["facta.version"] == 3
    assert snapshot.parent is not None
    assert snapshot.parent.span_id == otel.spans("facta.save")[1].context.span_id

    lookups = {
        p.attributes["facta.snapshot.result"]: p.value
        for p in otel.points("facta.snapshot.lookups")
    }
    assert lookups == {"miss": 2, "hit": 1}
    (events_per_load,) = otel.points("facta.load.events")
    assert (events_per_load.count, events_per_load.sum) == (3, 4)
    assert dict(events_per_load.attributes) == {
        "db.system": DB_SYSTEM[backend],
        "facta.aggregate_type": "Account",
    }


def test_a_load_of_a_missing_aggregate_is_an_error_span(
    memory_store: facta.EventStore, otel: Telemetry
) -> None:
    with pytest.raises(facta.AggregateNotFound):
        facta.Repository(memory_store, Account).load("nobody")
    span = otel.span("facta.load")
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["error.type"] == "AggregateNotFound"


async def test_async_repositories_are_traced_alike(
    async_store: facta.AsyncEventStore, otel: Telemetry
) -> None:
    accounts = facta.AsyncRepository(async_store, Account)
    account = Account()
    account.deposit(1)
    await accounts.save(account)
    await accounts.load(account.id)
    assert [s.name for s in otel.spans()] == ["facta.append", "facta.save", "facta.load"]


# -- projections and relays ---------------------------------------------------------------------


class Greeter(Projection[Any]):
    """Greets every new account by appending to its stream, and notes who it greeted."""

    name = "greeter"

    def __init__(self, store: facta.EventStore) -> None:
        self.store = store

    @handles(Opened)
    def opened(self, event: facta.RecordedEvent[Opened], connection: Any) -> None:
        if event.data.owner == "mallory":
            raise ValueError("no greeting for mallory")
        self.store.append(f"greeting-{event.data.owner}", [Deposited(1)], facta.ANY)


@pytest.mark.parametrize(
    "backend", ["memory", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_projection_batch_is_a_consumer_span_and_its_lag_is_measured(
    store: facta.EventStore,
    otel: Telemetry,
    readable: Callable[[facta.EventStore], None],
) -> None:
    store.append("acc-1", [Opened("ada")], facta.NO_STREAM)
    store.append("acc-2", [Opened("bob")], facta.NO_STREAM)
    readable(store)
    with ProjectionRunner(store, Greeter(store)) as runner:
        assert runner.catch_up() == 2
    batch = otel.span("facta.projection.batch")
    assert batch.kind is SpanKind.CONSUMER
    found = attributes(batch)
    assert (found["facta.projection"], found["facta.event_count"]) == ("greeter", 2)
    (last,) = [e for e in store.read_stream("acc-2")]
    assert found["facta.checkpoint"] == f"{last.transaction_id}:{last.position}"
    greetings = otel.spans("facta.append")[2:]
    assert [s.parent.span_id if s.parent else None for s in greetings] == [
        batch.context.span_id
    ] * 2
    (lag,) = otel.points("facta.projection.lag")
    assert lag.count == 1
    assert 0 <= lag.sum < 60
    assert dict(lag.attributes) == {"facta.projection": "greeter"}


def test_a_batch_whose_handler_fails_is_an_error_span(
    memory_store: facta.EventStore, otel: Telemetry
) -> None:
    memory_store.append("acc-1", [Opened("mallory")], facta.NO_STREAM)
    with (
        ProjectionRunner(memory_store, Greeter(memory_store)) as runner,
        pytest.raises(ProjectionError),
    ):
        runner.catch_up()
    batch = otel.spans("facta.projection.batch")[0]
    assert batch.status.status_code is StatusCode.ERROR
    assert attributes(batch)["error.type"] == "ValueError"
    assert otel.points("facta.projection.lag") == []


class Outbox(Broker):
    """A broker that acknowledges everything and keeps it."""

    received: ClassVar[list[Message]] = []

    async def open(self) -> None:
        self.received.clear()

    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        self.received.extend(messages)
        return len(messages)

    async def close(self) -> None:
        pass


async def test_a_relay_batch_is_a_producer_span_and_messages_carry_the_traceparent(
    async_store: facta.AsyncEventStore,
    otel: Telemetry,
    readable_async: Callable[[facta.AsyncEventStore], Awaitable[None]],
) -> None:
    with otel.tracer_provider.get_tracer("app").start_as_current_span("request"):
        await async_store.append("acc-1", [Opened("ada"), Deposited(5)], facta.NO_STREAM)
    await readable_async(async_store)
    (stored, _) = [e async for e in async_store.read_stream("acc-1")]
    async with Relay(async_store, Outbox(), name="outbox") as relay:
        assert await relay.catch_up() == 2
        assert await relay.catch_up() == 0  # an empty read makes no span
    batch = otel.span("facta.relay.batch")
    assert batch.kind is SpanKind.PRODUCER
    found = attributes(batch)
    assert found["facta.relay"] == "outbox"
    assert found["messaging.system"] == "test_telemetry"  # the broker's module
    assert (found["messaging.batch.message_count"], found["facta.event_count"]) == (2, 2)
    first = Outbox.received[0]
    assert first.headers[TRACEPARENT] == stored.metadata.user[TRACEPARENT]
    (lag,) = otel.points("facta.relay.lag")
    assert (lag.count, dict(lag.attributes)) == (1, {"facta.relay": "outbox"})


# -- reader lag (the PostgreSQL horizon) ----------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_reader_lag_is_observed_on_postgres_while_a_transaction_holds_readers_back(
    store: facta.EventStore, url: str, otel: Telemetry
) -> None:
    with telemetry.observe_reader_lag(store) as observation:
        assert observation.observed
        blocker = psycopg.connect(url.split("?")[0])
        try:
            blocker.execute("SELECT pg_current_xact_id()")  # an open transaction with an id
            store.append("acc-1", [Opened("ada")], facta.NO_STREAM)
            (held_back,) = otel.points("facta.reader.held_back")
            (age,) = otel.points("facta.reader.oldest_transaction_age")
        finally:
            blocker.rollback()
            blocker.close()
        assert held_back.value >= 1
        assert age.value >= 0
        assert held_back.attributes["facta.store"] == store.recorder.location
        assert held_back.attributes["db.system"] == "postgresql"
    assert not observation.observed


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_an_async_store_s_reader_lag_is_asked_on_its_loop(
    async_store: facta.AsyncEventStore,
    otel: Telemetry,
    readable_async: Callable[[facta.AsyncEventStore], Awaitable[None]],
) -> None:
    await async_store.append("acc-1", [Opened("ada")], facta.NO_STREAM)
    await readable_async(async_store)
    with telemetry.observe_reader_lag(async_store):
        assert otel.points("facta.reader.held_back") == []  # on the loop's thread: skipped
        collected: list[Any] = []
        collector = threading.Thread(
            target=lambda: collected.extend(otel.points("facta.reader.held_back"))
        )
        collector.start()  # the loop must run meanwhile: the collection is answered on it
        await asyncio.to_thread(collector.join, 30)
    (held_back,) = collected
    assert held_back.value >= 0


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_embedded_stores_have_no_reader_lag_to_observe(
    store: facta.EventStore, otel: Telemetry
) -> None:
    with telemetry.observe_reader_lag(store) as observation:
        assert not observation.observed
        assert otel.points("facta.reader.held_back") == []


# -- without OpenTelemetry ------------------------------------------------------------------------


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_facta_never_imports_opentelemetry_itself() -> None:
    out = run_python(
        """
        import sys
        from dataclasses import dataclass
        import facta, facta.telemetry
        from facta.context import correlation

        @facta.event("E")
        @dataclass(frozen=True)
        class E:
            n: int

        with facta.connect("memory://") as store, correlation("req-1"):
            store.append("s", [E(1)], facta.NO_STREAM)
            print(next(store.read_stream("s")).metadata.correlation_id)
        print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
        """
    )
    assert out.split() == ["req-1", "[]"]


def test_facta_runs_where_opentelemetry_is_not_installed() -> None:
    out = run_python(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if it were not installed
        from dataclasses import dataclass
        import facta
        from facta import telemetry

        @facta.event("E")
        @dataclass(frozen=True)
        class E:
            n: int

        class A(facta.Aggregate):
            def apply(self, event: object) -> None:
                pass

        with facta.connect("memory://") as store:
            store.append("s", [E(1)], facta.NO_STREAM)
            print(facta.Repository(store, A).load("s").version)
            try:
                telemetry.observe_reader_lag(store)
            except ImportError as e:
                print(e)
        """
    )
    assert (
        out.splitlines()[1] == "facta's metrics need opentelemetry-api: pip install 'facta[otel]'"
    )


def test_with_opentelemetry_imported_but_no_provider_set_facta_makes_no_span() -> None:
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)  # nobody set one
    assert telemetry._active() is None  # the check every instrumented call makes


@pytest.mark.slow
def test_the_tracing_benchmark_runs_and_prints_its_table() -> None:
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [
            sys.executable,
            "bench/tracing.py",
            "--backends",
            "memory",
            "--rounds",
            "1",
            "--trials",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    assert "| W1 (µs/save) | memory |" in result.stdout
    assert "| W3 (ms/load) | memory |" in result.stdout
