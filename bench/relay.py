"""Relays and subscriptions: events/s into each broker against its raw client, and latency.

    python bench/relay.py                                   # 100,000 events, 3 rounds, everything
    python bench/relay.py --events 20000 --rounds 5 --brokers nats,redis --backends postgres
    python bench/relay.py --events 200 --rounds 1 --brokers nats --backends sqlite --samples 50

Throughput. Each backend's store is filled once with ``--events`` events (1,000 streams, the
suite's six-field event with correlation and causation ids). Then, in every round, each broker
gets, in an order that rotates every round: a facta ``Relay`` publishing the whole log from its
start into a fresh destination (a JetStream stream, a topic exchange with a durable queue bound,
a Redis stream key), timed from ``catch_up()`` until every event is acknowledged and the last
checkpoint saved; and the raw limit, the broker's own client publishing the same number of
pre-encoded messages (the relay's subjects, bytes and headers) into a fresh destination of the
same kind, in batches of the relay's ``batch_size`` with every message of a batch in flight
before its acknowledgements are awaited, as the facta broker modules do (JetStream
``publish_async`` and the ack futures, aio-pika publisher confirms, a redis-py pipeline of
``XADD`` s). Both are checked afterwards: the destination holds every event.

Latency. A subscriber (``store.subscribe()``, async) follows the live log while a writer in the
same event loop appends single events at ``--rate`` per second; per event, the time from the
append call's return (committed) to the subscriber receiving it, and from the append call's
start. ``--samples`` events per backend, split over the rounds; the memory store is measured
too, for reference.

Results: Markdown tables on stdout (with the goals' verdicts), progress on stderr, and JSON
under bench/results/ (or ``--json``). Exits 1 if any run failed (a missed goal is not a failure).
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import cProfile
import gc
import json
import math
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import facta
from bench.facta_systems import ItemAdded
from bench.model import POSTGRES_URL, field_pool
from bench.report import machine
from bench.workloads import create_schema, drop_schema
from facta.publishing import Broker, Message, Relay, message_for
from facta.records import StoredEvent
from facta.subscriptions_async import AsyncSubscription

ROOT = Path(__file__).resolve().parent.parent
NATS_URL = "nats://127.0.0.1:4222"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
BROKERS = ["nats", "rabbitmq", "redis"]
BACKENDS = ["sqlite", "postgres"]
BATCH = 500  # Relay's default batch_size: the raw clients get the same number in flight
STREAMS = 1000  # the log's events are spread over this many streams
RELAY_GOAL = 0.5  # relay events/s over the raw client's, at least
LATENCY_GOAL_MS = 5.0  # p50 committed -> seen on PostgreSQL, at most
TIMEOUT = 600.0  # seconds one run may take before it counts as failed

T = TypeVar("T")


# -- the destinations ---------------------------------------------------------------------


class Target(abc.ABC):
    """One fresh destination on a broker: made by ``setup``, filled by a relay (``broker``)
    or by the raw client (``prepare_raw`` untimed, then ``publish_raw`` timed), counted by
    ``stored`` and removed by ``teardown``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    @abc.abstractmethod
    async def setup(self) -> None: ...

    @abc.abstractmethod
    def broker(self) -> Broker: ...

    @abc.abstractmethod
    async def prepare_raw(self, messages: Sequence[Message]) -> None: ...

    @abc.abstractmethod
    async def publish_raw(self) -> None: ...

    @abc.abstractmethod
    async def stored(self) -> int: ...

    @abc.abstractmethod
    async def teardown(self) -> None: ...


class NatsTarget(Target):
    """A JetStream stream configured as ``JetStreamBroker`` creates one (file storage, limits
    retention, 2-minute duplicate window); every message carries ``Nats-Msg-Id``."""

    def __init__(self, prefix: str) -> None:
        import nats
        from nats.js.api import RetentionPolicy, StorageType, StreamConfig

        super().__init__(prefix)
        self._nats = nats
        self.stream = prefix.upper()
        self.config = StreamConfig(
            name=self.stream,
            subjects=[f"{prefix}.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=None,
            duplicate_window=120.0,
            num_replicas=1,
            storage=StorageType.FILE,
        )
        self.client: Any = None
        self.outgoing: list[tuple[str, bytes, dict[str, str]]] = []

    async def setup(self) -> None:
        self.client = await self._nats.connect(NATS_URL)
        await self.client.jetstream().add_stream(self.config)

    def broker(self) -> Broker:
        from facta.publishing.nats import JetStreamBroker

        return JetStreamBroker(NATS_URL, stream=self.stream, prefix=self.prefix)

    async def prepare_raw(self, messages: Sequence[Message]) -> None:
        from facta.publishing.nats import nats_subject

        self.outgoing = [
            (
                nats_subject(m.subject),
                m.data,
                {**m.headers, "Nats-Msg-Id": m.event_id, "Nats-Expected-Stream": self.stream},
            )
            for m in messages
        ]

    async def publish_raw(self) -> None:
        js = self.client.jetstream(timeout=10.0)
        publish, outgoing = js.publish_async, self.outgoing
        for start in range(0, len(outgoing), BATCH):
            acks = [
                await publish(subject, data, headers=headers)
                for subject, data, headers in outgoing[start : start + BATCH]
            ]
            await asyncio.gather(*acks)

    async def stored(self) -> int:
        info = await self.client.jetstream().stream_info(self.stream)
        return int(info.state.messages)

    async def teardown(self) -> None:
        self.outgoing = []
        if self.client is not None:
            try:
                await self.client.jetstream().delete_stream(self.stream)
            finally:
                await self.client.close()
                self.client = None


class RabbitMQTarget(Target):
    """A durable topic exchange (``RabbitMQBroker``'s) with one durable queue bound to every
    routing key; persistent messages, published mandatory with publisher confirms."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self.connection: Any = None
        self.channel: Any = None
        self.exchange: Any = None
        self.outgoing: list[tuple[Any, str]] = []

    async def setup(self) -> None:
        import aio_pika

        self.connection = await aio_pika.connect(AMQP_URL)
        self.channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self.exchange = await self.channel.declare_exchange(
            self.prefix, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await self.channel.declare_queue(self.prefix, durable=True)
        await queue.bind(self.exchange, f"{self.prefix}.#")

    def broker(self) -> Broker:
        from facta.publishing.rabbitmq import RabbitMQBroker

        return RabbitMQBroker(AMQP_URL, prefix=self.prefix)

    async def prepare_raw(self, messages: Sequence[Message]) -> None:
        """The messages as ``RabbitMQBroker`` makes them (same properties and headers)."""
        from datetime import datetime

        import aio_pika

        from facta.publishing.rabbitmq import routing_key_for

        self.outgoing = [
            (
                aio_pika.Message(
                    m.data,
                    headers=dict(m.headers),
                    content_type="application/json",
                    content_encoding="deflate" if m.headers["Facta-Encoding"] == "1" else None,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=m.event_id,
                    correlation_id=m.headers.get("Facta-Correlation-Id"),
                    timestamp=datetime.fromisoformat(m.headers["Facta-Recorded-At"]),
                    type=m.headers["Facta-Type"],
                ),
                routing_key_for(m.subject),
            )
            for m in messages
        ]

    async def publish_raw(self) -> None:
        publish, outgoing = self.exchange.publish, self.outgoing
        for start in range(0, len(outgoing), BATCH):
            await asyncio.gather(
                *(
                    publish(amqp, key, mandatory=True)
                    for amqp, key in outgoing[start : start + BATCH]
                )
            )

    async def stored(self) -> int:
        queue = await self.channel.declare_queue(self.prefix, passive=True)
        return int(queue.declaration_result.message_count)

    async def teardown(self) -> None:
        self.outgoing = []
        if self.connection is not None:
            try:
                await self.channel.queue_delete(self.prefix)
                await self.channel.exchange_delete(self.prefix)
            finally:
                await self.connection.close()
                self.connection = None


class RedisTarget(Target):
    """The Redis stream ``<prefix>:events`` with ``RedisBroker``'s fields; the raw client
    pipelines the ``XADD`` s (no transaction), a batch per round trip."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self.key = f"{prefix}:events"
        self.client: Any = None
        self.outgoing: list[dict[str, str | bytes]] = []

    async def setup(self) -> None:
        import redis.asyncio

        self.client = redis.asyncio.Redis.from_url(REDIS_URL)
        await self.client.delete(self.key)

    def broker(self) -> Broker:
        from facta.publishing.redis import RedisBroker

        return RedisBroker(REDIS_URL, prefix=self.prefix)

    async def prepare_raw(self, messages: Sequence[Message]) -> None:
        self.outgoing = [
            {"event_id": m.event_id, "subject": m.subject, "data": m.data, **m.headers}
            for m in messages
        ]

    async def publish_raw(self) -> None:
        client, key, outgoing = self.client, self.key, self.outgoing
        for start in range(0, len(outgoing), BATCH):
            pipeline = client.pipeline(transaction=False)
            for fields in outgoing[start : start + BATCH]:
                pipeline.xadd(key, fields)
            await pipeline.execute()

    async def stored(self) -> int:
        return int(await self.client.xlen(self.key))

    async def teardown(self) -> None:
        self.outgoing = []
        if self.client is not None:
            try:
                keys = [k async for k in self.client.scan_iter(match=f"{self.prefix}:*")]
                if keys:
                    await self.client.delete(*keys)
            finally:
                await self.client.aclose()
                self.client = None


TARGETS: dict[str, type[Target]] = {
    "nats": NatsTarget,
    "rabbitmq": RabbitMQTarget,
    "redis": RedisTarget,
}


# -- the stores ---------------------------------------------------------------------------


class Stores:
    """Temporary stores: a SQLite file or a PostgreSQL schema each, removed by ``close``.

    The relays read one store per backend (``log``), the latency runs write into another
    (``latency``), so the relays' log holds exactly the events it was filled with.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="facta-relay-bench-"))
        self.prefix = f"facta_relay_bench_{os.getpid()}"
        self.open: list[facta.AsyncEventStore] = []
        self.schemas: list[str] = []

    async def connect(self, backend: str, purpose: str) -> facta.AsyncEventStore:
        if backend == "memory":
            url = "memory://"
        elif backend == "sqlite":
            url = f"sqlite:///{self.folder / purpose}.db"
        else:
            schema = f"{self.prefix}_{purpose}"
            create_schema(schema)
            self.schemas.append(schema)
            url = f"{POSTGRES_URL}?schema={schema}"
        store = facta.connect_async(url)
        await store.__aenter__()
        self.open.append(store)
        return store

    async def close(self) -> None:
        for store in self.open:
            await store.close()
        self.open = []
        shutil.rmtree(self.folder, ignore_errors=True)
        for schema in self.schemas:
            try:
                drop_schema(schema)
            except Exception as e:  # an unreachable server has said so already
                _say(f"could not drop schema {schema}: {e}")


def _new_event(i: int) -> facta.NewEvent:
    """The suite's event (``i`` picks its fields), with the ids a command handler would set."""
    fields = _POOL[i % len(_POOL)]
    metadata = facta.Metadata(correlation_id=str(uuid.uuid4()), causation_id=str(uuid.uuid4()))
    return facta.NewEvent(ItemAdded(*fields), metadata=metadata)


_POOL = field_pool()


async def fill(store: facta.AsyncEventStore, events: int) -> None:
    """``events`` events in ``STREAMS`` streams, appended 100 at a time, round-robin."""
    per_stream = math.ceil(events / STREAMS)
    done = 0
    for start in range(0, per_stream, 100):
        for s in range(STREAMS):
            count = min(100, per_stream - start, events - done)
            if count <= 0:
                break
            batch = [_new_event(done + k) for k in range(count)]
            await store.append(f"cart-{s:04d}", batch, facta.ANY)
            done += count
    await readable(store)


async def readable(store: facta.AsyncEventStore, seconds: float = 120.0) -> None:
    """Wait until ``read_all`` shows every committed event: a shared PostgreSQL server holds
    events back behind other sessions' open transactions (the other backends need no wait)."""
    wait = getattr(store.recorder, "wait_until_readable", None)
    if wait is not None and not await wait(seconds):
        lag = await store.recorder.reader_lag()  # type: ignore[attr-defined]
        raise RuntimeError(f"read_all is held back by an open transaction: {lag}")


async def whole_log(
    store: facta.AsyncEventStore,
) -> list[tuple[StoredEvent, str | None, str | None]]:
    """Every stored row with its metadata's correlation and causation ids (for raw messages)."""
    rows: list[tuple[StoredEvent, str | None, str | None]] = []
    after = facta.Checkpoint()
    while page := await store.recorder.read_all(after, None, 10_000):
        for row in page:
            metadata = store.codec.decode_metadata(row.metadata)
            rows.append((row, metadata.correlation_id, metadata.causation_id))
        after = page[-1].checkpoint
    return rows


# -- the runs -----------------------------------------------------------------------------


class Run:
    """Names every destination and relay of this process uniquely (the servers are shared)."""

    def __init__(self) -> None:
        self.count = 0

    def prefix(self) -> str:
        # the same length for every run: raw and relay messages have the same sizes
        self.count += 1
        return f"relaybench{os.getpid():07d}n{self.count:04d}"


async def _timed(work: Awaitable[T], profiler: cProfile.Profile | None) -> tuple[T, float]:
    """``work``'s result and how long it took in seconds (profiled, with ``profiler``)."""
    gc.collect()
    if profiler is not None:
        profiler.enable()
    start = time.perf_counter()
    try:
        result = await asyncio.wait_for(work, TIMEOUT)
    finally:
        seconds = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
    return result, seconds


async def relay_run(
    store: facta.AsyncEventStore,
    broker: str,
    prefix: str,
    events: int,
    profiler: cProfile.Profile | None = None,
) -> float:
    """A relay publishing the whole log into a fresh destination; events/s."""
    target = TARGETS[broker](prefix)
    await target.setup()
    try:
        relay = Relay(store, target.broker(), name=prefix, prefix=prefix, batch_size=BATCH)
        async with relay:  # untimed: the lock, the checkpoint, the connection
            published, seconds = await _timed(relay.catch_up(), profiler)
        stored = await target.stored()
        if published != events or stored != events:
            raise RuntimeError(f"published {published}, {broker} holds {stored} of {events}")
    finally:
        await target.teardown()
    return events / seconds


async def raw_run(
    log: Sequence[tuple[StoredEvent, str | None, str | None]],
    broker: str,
    prefix: str,
    profiler: cProfile.Profile | None = None,
) -> float:
    """The broker's client publishing the relay's messages, pre-encoded; events/s."""
    target = TARGETS[broker](prefix)
    await target.setup()
    try:
        messages = [message_for(row, c, k, prefix=prefix) for row, c, k in log]
        await target.prepare_raw(messages)  # untimed
        del messages
        _, seconds = await _timed(target.publish_raw(), profiler)
        stored = await target.stored()
        if stored != len(log):
            raise RuntimeError(f"{broker} holds {stored} of {len(log)}")
    finally:
        await target.teardown()
    return len(log) / seconds


async def latency_run(
    store: facta.AsyncEventStore, stream: str, samples: int, rate: float
) -> list[tuple[float, float]]:
    """(committed -> seen, started -> seen) in ms for ``samples`` single-event appends."""
    warm = 20  # first appends: the subscriber starts listening, statements get prepared
    started, returned, seen = [0.0] * samples, [0.0] * samples, [0.0] * samples
    warmed = asyncio.Event()
    after = await store.recorder.last_checkpoint()

    async def follow(subscription: AsyncSubscription) -> None:
        clock, count = time.perf_counter, 0
        async for event in subscription:
            now = clock()
            if event.stream_id != stream:
                continue
            if event.version > warm:
                seen[event.version - warm - 1] = now
            count += 1
            if count == warm:
                warmed.set()
            if count == warm + samples:
                return

    async with store.subscribe(after) as subscription:
        follower = asyncio.ensure_future(follow(subscription))
        try:
            for i in range(warm):
                await store.append(stream, [_new_event(i)], facta.ANY)
                await asyncio.sleep(1 / rate)
            await asyncio.wait_for(warmed.wait(), 60.0)
            gc.collect()
            begin, clock = time.perf_counter(), time.perf_counter
            for i in range(samples):
                delay = begin + i / rate - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                event = _new_event(i)
                started[i] = clock()
                await store.append(stream, [event], facta.ANY)
                returned[i] = clock()
            await asyncio.wait_for(asyncio.shield(follower), 60.0)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    return [
        ((s - r) * 1000, (s - b) * 1000) for s, r, b in zip(seen, returned, started, strict=True)
    ]


# -- the report ---------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (``p`` in 0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def table(header: list[str], rows: list[list[str]], left: int = 2) -> list[str]:
    """A Markdown table; the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i < left else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join("-" * (w + 2) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths))
        + "|"
    )
    return [line(header), rule, *(line(row) for row in rows)]


def _rate(values: list[float]) -> tuple[str, str]:
    if not values:
        return "", ""
    return f"{statistics.median(values):,.0f}", f"{min(values):,.0f}-{max(values):,.0f}"


def relay_table(
    throughput: dict[tuple[str, str], list[float]],
    errors: dict[tuple[str, str], str],
    brokers: list[str],
    backends: list[str],
) -> tuple[list[str], list[dict[str, Any]]]:
    rows, found = [], []
    for broker in brokers:
        raw = throughput.get((broker, "raw"), [])
        raw_median, raw_spread = _rate(raw)
        for backend in backends:
            mine = throughput.get((broker, backend), [])
            error = errors.get((broker, backend)) or errors.get((broker, "raw"))
            ratio = statistics.median(mine) / statistics.median(raw) if mine and raw else None
            verdict = "n/a" if ratio is None else "met" if ratio >= RELAY_GOAL else "MISSED"
            median, spread = _rate(mine)
            rows.append(
                [
                    broker,
                    backend,
                    median or f"error: {error}",
                    spread,
                    raw_median,
                    raw_spread,
                    "" if ratio is None else f"{ratio:.2f}",
                    f">= {RELAY_GOAL:g} {verdict}",
                ]
            )
            found.append(
                {
                    "broker": broker,
                    "backend": backend,
                    "relay": mine,
                    "raw": raw,
                    "ratio": ratio,
                    "goal": RELAY_GOAL,
                    "verdict": verdict,
                    "error": error,
                }
            )
    header = [
        "broker",
        "backend",
        "relay events/s",
        "min-max",
        "raw client events/s",
        "min-max",
        "relay/raw",
        "goal",
    ]
    return table(header, rows), found


def latency_table(
    latencies: dict[str, list[tuple[float, float]]], errors: dict[str, str], backends: list[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    rows, found = [], []
    for backend in backends:
        samples = latencies.get(backend, [])
        if not samples:
            rows.append([backend, f"error: {errors.get(backend, 'no run')}", *[""] * 8])
            continue
        committed = [c for c, _ in samples]
        started = [s for _, s in samples]
        figures = [percentile(values, p) for values in (committed, started) for p in (50, 99, 100)]
        goal = verdict = ""
        if backend == "postgres":
            goal = f"p50 <= {LATENCY_GOAL_MS:g} ms"
            verdict = "met" if figures[0] <= LATENCY_GOAL_MS else "MISSED"
        rows.append(
            [
                backend,
                f"{len(samples):,}",
                *(f"{value:.2f}" for value in figures),
                f"{goal} {verdict}".strip(),
            ]
        )
        found.append(
            {
                "backend": backend,
                "samples": len(samples),
                "committed_to_seen_ms": dict(zip(("p50", "p99", "max"), figures[:3], strict=True)),
                "started_to_seen_ms": dict(zip(("p50", "p99", "max"), figures[3:], strict=True)),
                "goal": goal,
                "verdict": verdict,
            }
        )
    header = [
        "backend",
        "samples",
        "committed p50 ms",
        "p99",
        "max",
        "started p50 ms",
        "p99",
        "max",
        "goal",
    ]
    return table(header, rows, left=1), found


# -- the command --------------------------------------------------------------------------

_STARTED = time.monotonic()


def _say(message: str) -> None:
    minutes, seconds = divmod(int(time.monotonic() - _STARTED), 60)
    print(f"[{minutes:2d}:{seconds:02d}] {message}", file=sys.stderr, flush=True)


def _names(text: str, available: list[str], what: str) -> list[str]:
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in available]
    if unknown or not chosen:
        raise SystemExit(
            f"unknown {what} {', '.join(unknown)!r}; choose from {', '.join(available)}"
        )
    return [a for a in available if a in chosen]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="the log's length")
    parser.add_argument("--rounds", type=int, default=3, help="runs per broker and system")
    parser.add_argument("--brokers", default=",".join(BROKERS), help="nats,rabbitmq,redis")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="sqlite,postgres")
    parser.add_argument(
        "--samples", type=int, default=1000, help="latency samples per backend (all rounds)"
    )
    parser.add_argument(
        "--rate", type=float, default=200.0, help="appends/s while measuring latency"
    )
    parser.add_argument(
        "--json", type=Path, help="where to write the results (default bench/results/)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile one relay and one raw run per broker and backend instead (no tables)",
    )
    parser.add_argument("--top", type=int, default=25, help="--profile: functions listed")
    args = parser.parse_args(argv)
    if args.events < 1 or args.rounds < 1 or args.samples < 1 or not args.rate > 0:
        parser.error("--events, --rounds, --samples and --rate must be positive")
    args.brokers = _names(args.brokers, BROKERS, "broker")
    args.backends = _names(args.backends, BACKENDS, "backend")
    return args


class Results:
    """What the runs found: events/s per (broker, backend or "raw"), latency samples per
    backend, and what failed (a case that failed once is not run again)."""

    def __init__(self) -> None:
        self.throughput: dict[tuple[str, str], list[float]] = {}
        self.relay_errors: dict[tuple[str, str], str] = {}
        self.latencies: dict[str, list[tuple[float, float]]] = {}
        self.latency_errors: dict[str, str] = {}


async def measure(args: argparse.Namespace) -> Results:
    """Fill the stores, then round after round: every broker's runs, every backend's latency."""
    results, stores, run = Results(), Stores(), Run()
    logs: dict[str, facta.AsyncEventStore] = {}
    tails: dict[str, facta.AsyncEventStore] = {}
    try:
        for backend in args.backends:
            _say(f"filling the {backend} store with {args.events:,} events")
            try:
                logs[backend] = store = await stores.connect(backend, "log")
                await fill(store, args.events)
                tails[backend] = await stores.connect(backend, "latency")
            except Exception as e:
                _say(f"{backend}: could not set up its stores: {e!r}")
                logs.pop(backend, None)
                for broker in args.brokers:
                    results.relay_errors[(broker, backend)] = "setup failed"
                results.latency_errors[backend] = "setup failed"
        tails["memory"] = await stores.connect("memory", "latency")
        # the raw clients send the first backend's log as the relay would
        log = await whole_log(next(iter(logs.values()))) if logs else []
        per_round = math.ceil(args.samples / args.rounds)
        for r in range(args.rounds):
            for broker in _rotated(args.brokers, r):
                for system in _rotated(["raw", *logs], r):
                    if (broker, system) not in results.relay_errors:
                        await throughput_run(results, broker, system, logs, log, run, args)
                _say(f"  round {r + 1}/{args.rounds}: {broker} done")
            for backend in _rotated(list(tails), r):
                if backend not in results.latency_errors:
                    await latency_round(results, backend, tails[backend], r, per_round, args)
    finally:
        await stores.close()
    return results


async def throughput_run(
    results: Results,
    broker: str,
    system: str,
    logs: dict[str, facta.AsyncEventStore],
    log: Sequence[tuple[StoredEvent, str | None, str | None]],
    run: Run,
    args: argparse.Namespace,
) -> None:
    """One relay run (``system`` a backend) or raw run (``system`` "raw"), recorded."""
    key, prefix = (broker, system), run.prefix()
    try:
        if system == "raw":
            rate = await raw_run(log, broker, prefix)
        else:
            await readable(logs[system])
            rate = await relay_run(logs[system], broker, prefix, args.events)
    except Exception as e:
        results.relay_errors[key] = type(e).__name__
        _say(f"{broker} {system} failed: {e!r}")
        return
    results.throughput.setdefault(key, []).append(rate)
    what = "raw client" if system == "raw" else f"relay from {system}"
    _say(f"    {broker:8} {what:20} {rate:10,.0f} events/s")


async def latency_round(
    results: Results,
    backend: str,
    store: facta.AsyncEventStore,
    r: int,
    samples: int,
    args: argparse.Namespace,
) -> None:
    """One latency run on ``backend``'s latency store, recorded."""
    try:
        found = await latency_run(store, f"latency-{r}", samples, args.rate)
    except Exception as e:
        results.latency_errors[backend] = type(e).__name__
        _say(f"latency on {backend} failed: {e!r}")
        return
    results.latencies.setdefault(backend, []).extend(found)
    p50 = statistics.median(c for c, _ in found)
    _say(f"    latency {backend:8} p50 {p50:.2f} ms ({len(found)} samples)")


# Where a profiled run's own time goes, before bench/profiling.py's buckets: the broker
# clients live in site-packages, which that module counts as stdlib.
_CLIENTS = ("/nats/", "/aio_pika/", "/aiormq/", "/pamqp/", "/redis/")


def _bucket(filename: str, function: str) -> str:
    from bench.profiling import bucket

    if any(marker in filename for marker in _CLIENTS):
        return "broker client (nats-py, aio-pika/aiormq/pamqp, redis-py)"
    if "_socket.socket" in function:
        return "socket send/recv"
    return bucket(filename, function)


async def profile(args: argparse.Namespace) -> None:
    """Instead of the benchmark: one unprofiled and one profiled run of every relay (and raw
    client), with the profiled run's own time by bucket and its top functions."""
    stores, run = Stores(), Run()
    try:
        for backend in args.backends:
            _say(f"filling the {backend} store with {args.events:,} events")
            store = await stores.connect(backend, "log")
            await fill(store, args.events)
            log = await whole_log(store)
            for broker in args.brokers:
                for system in ("raw", backend):
                    what = f"{broker} {'raw client' if system == 'raw' else 'relay from ' + system}"
                    profiler = cProfile.Profile()
                    if system == "raw":
                        plain = await raw_run(log, broker, run.prefix())
                        profiled = await raw_run(log, broker, run.prefix(), profiler)
                    else:
                        plain = await relay_run(store, broker, run.prefix(), args.events)
                        profiled = await relay_run(
                            store, broker, run.prefix(), args.events, profiler
                        )
                    stats = pstats.Stats(profiler)
                    totals: dict[str, float] = {}
                    raw_stats = stats.stats  # type: ignore[attr-defined]
                    for (filename, _, function), (_, _, own, _, _) in raw_stats.items():
                        name = _bucket(filename, function)
                        totals[name] = totals.get(name, 0.0) + own
                    spent = sum(totals.values())
                    print(
                        f"\n## {what}: {plain:,.0f} events/s unprofiled, {profiled:,.0f} profiled"
                    )
                    print(f"own time by bucket ({spent * 1000:,.0f} ms profiled):")
                    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
                        print(f"  {seconds / spent:6.1%}  {seconds * 1000:9.1f} ms  {name}")
                    stats.sort_stats("tottime").print_stats(args.top)
                    sys.stdout.flush()
    finally:
        await stores.close()


def _rotated(items: Sequence[str], by: int) -> list[str]:
    items = list(items)
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        asyncio.run(profile(args))
        return 0
    started = time.time()
    found = asyncio.run(measure(args))
    elapsed = time.time() - started
    info = machine()
    relay_lines, relay_rows = relay_table(
        found.throughput, found.relay_errors, args.brokers, args.backends
    )
    latency_lines, latency_rows = latency_table(
        found.latencies, found.latency_errors, ["memory", *args.backends]
    )
    print(
        "\n".join(
            [
                f"facta relay benchmark: {args.events:,} events, {args.rounds} rounds, "
                f"{elapsed / 60:.1f} min; {info['cpu']}, {info['cores']} cores",
                "",
                f"**Relay throughput, {args.events:,} events** (events/s, medians of "
                f"{args.rounds}; raw: the broker's client, pre-encoded messages, the same "
                f"{BATCH} in flight)",
                "",
                *relay_lines,
                "",
                f"**Append committed -> subscriber sees it** (ms; single appends at "
                f"{args.rate:g}/s; 'started': from the append call's start)",
                "",
                *latency_lines,
            ]
        )
    )
    out = args.json or ROOT / "bench" / "results" / time.strftime("relay-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "command": " ".join(
            ["python", "bench/relay.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "minutes": round(elapsed / 60, 2),
        "machine": info,
        "relay": relay_rows,
        "latency": latency_rows,
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    _say(f"results written to {out}")
    failed = bool(found.relay_errors or found.latency_errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
