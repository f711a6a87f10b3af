"""OpenTelemetry spans and metrics, once the application has set OpenTelemetry up.

facta depends on no part of OpenTelemetry (``pip install 'facta[otel]'`` brings the API in)
and never imports it on its own: until the application has imported ``opentelemetry``, an
instrumented call costs one look into ``sys.modules``; after that, while no tracer or meter
provider is set, a look at the global providers. Once a provider is set (globally, or given
to :func:`configure`) facta makes these spans, each with ``db.system``:

- ``facta.append`` (client): ``facta.stream_id`` (``facta.stream_ids`` for several),
  ``facta.event_types``, ``facta.event_count``, ``facta.version``;
- ``facta.load`` (internal): ``facta.stream_id``, ``facta.aggregate_type``,
  ``facta.event_count`` (events replayed), ``facta.snapshot.hit``, ``facta.version``;
- ``facta.save`` (internal): ``facta.stream_id``, ``facta.aggregate_type``,
  ``facta.event_types``, ``facta.event_count``, ``facta.version``;
- ``facta.snapshot`` (client, a snapshot written): ``facta.stream_id``,
  ``facta.aggregate_type``, ``facta.version``;
- ``facta.projection.batch`` (consumer): ``facta.projection``, ``facta.event_count``,
  ``facta.checkpoint``;
- ``facta.relay.batch`` (producer): ``facta.relay``, ``messaging.system``,
  ``messaging.batch.message_count``, ``facta.event_count`` (acknowledged),
  ``facta.checkpoint``;

and these metrics: ``facta.append.duration`` (histogram, s), ``facta.load.events``
(histogram: events replayed by each load), ``facta.snapshot.lookups`` (counter, with
``facta.snapshot.result`` ``hit`` or ``miss``), ``facta.projection.lag`` and
``facta.relay.lag`` (histograms, s: how long after it was recorded the newest event of each
batch was committed, or acknowledged by the broker), and for the stores given to
:func:`observe_reader_lag` the gauges ``facta.reader.held_back`` and
``facta.reader.oldest_transaction_age`` (the PostgreSQL horizon).

While facta traces, each appended event gets the W3C ``traceparent`` of its append's span
(``facta.append``, a child of the caller's span) in ``metadata.user["traceparent"]``
(:data:`facta.context.TRACEPARENT`; metadata that has the key keeps its own), so an event
leads back to the request that appended it. A relay sends it on as the message's
``traceparent`` header.

A provider set globally after facta's first instrumented call is noticed within a second
(looking for one costs more than a microsecond, so facta looks once a second while none is
set).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from facta.errors import InvalidEvent
from facta.events import NewEvent

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Span, TracerProvider

    from facta.events import EventRegistry, RecordedEvent
    from facta.records import StoredEvent
    from facta.store import EventStore
    from facta.store_async import AsyncEventStore

__all__ = ["ReaderLagObservation", "configure", "observe_reader_lag"]

log = logging.getLogger("facta.telemetry")

F = TypeVar("F", bound=Callable[..., Any])
Attributes = dict[str, Any]
# done(operation, args, kwargs, result, error, seconds): completes an operation
Done = Callable[
    ["_Operation", tuple[Any, ...], dict[str, Any], Any, BaseException | None, float], None
]

_OTEL = "opentelemetry.trace"  # imported by whatever set OpenTelemetry up
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
_COUNT_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000)
_LAG_FRESH = 1.0  # seconds one reader_lag() answer serves both reader gauges
_LAG_TIMEOUT = 5.0  # seconds a collection waits for an async store's reader lag
_LOOK_AGAIN = 1.0  # seconds between looks for a global provider while none is set


# -- switching on ---------------------------------------------------------------------------


class _Telemetry:
    """facta's tracer and instruments, on the global providers or on those configured."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        from opentelemetry import context, metrics, trace

        self.trace, self.context, self.metrics = trace, context, metrics
        self._fixed_tracing = tracer_provider is not None
        self._fixed_metrics = meter_provider is not None
        self._tracing_on = self._metrics_on = False  # a global provider, once set, stays
        self._tracing_looked = self._metrics_looked = 0.0  # when to look for one again
        self._no_tracing = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        self._no_metrics: tuple[type, ...] = (metrics.NoOpMeterProvider,)
        try:  # the placeholder the API hands out until a meter provider is set
            from opentelemetry.metrics._internal import _ProxyMeterProvider

            self._no_metrics += (_ProxyMeterProvider,)
        except ImportError:  # another API version: measurements then go to its placeholder
            pass
        version = _facta_version()
        self.tracer = trace.get_tracer("facta", version, tracer_provider)
        meter = metrics.get_meter("facta", version or "", meter_provider)
        self.append_duration = _histogram(
            meter, "facta.append.duration", "s", "How long appends take.", _LATENCY_BUCKETS
        )
        self.load_events = _histogram(
            meter, "facta.load.events", "{event}", "Events replayed by each load.", _COUNT_BUCKETS
        )
        self.snapshot_lookups = meter.create_counter(
            "facta.snapshot.lookups",
            "{lookup}",
            "Loads of aggregates that take snapshots, by whether a snapshot served them "
            "(facta.snapshot.result: hit or miss).",
        )
        self.projection_lag = _histogram(
            meter,
            "facta.projection.lag",
            "s",
            "How long after it was recorded the newest event of each batch was committed.",
            _LAG_BUCKETS,
        )
        self.relay_lag = _histogram(
            meter,
            "facta.relay.lag",
            "s",
            "How long after it was recorded the newest event of each batch was acknowledged.",
            _LAG_BUCKETS,
        )
        meter.create_observable_gauge(
            "facta.reader.held_back",
            [_observe_held_back],
            "{event}",
            "Committed events the global log's readers cannot see yet (the PostgreSQL horizon).",
        )
        meter.create_observable_gauge(
            "facta.reader.oldest_transaction_age",
            [_observe_oldest_age],
            "s",
            "How long the transaction that holds the global log's readers back has been open.",
        )

    def tracing(self) -> bool:
        """Whether facta's spans go anywhere (a global provider unset is looked for again
        once a second: the look costs more than a microsecond)."""
        if self._fixed_tracing or self._tracing_on:
            return True
        now = time.monotonic()
        if now < self._tracing_looked:
            return False
        self._tracing_looked = now + _LOOK_AGAIN
        self._tracing_on = not isinstance(self.trace.get_tracer_provider(), self._no_tracing)
        return self._tracing_on

    def measuring(self) -> bool:
        """Whether facta's measurements go anywhere (looked for as :meth:`tracing` is)."""
        if self._fixed_metrics or self._metrics_on:
            return True
        now = time.monotonic()
        if now < self._metrics_looked:
            return False
        self._metrics_looked = now + _LOOK_AGAIN
        self._metrics_on = not isinstance(self.metrics.get_meter_provider(), self._no_metrics)
        return self._metrics_on


_global: _Telemetry | None = None  # on the global providers: made once, when first needed
_state: _Telemetry | None = None  # in force (None: not made yet, or switched off)
_configured = False  # by configure(): _state is what it made (None: switched off)
_lock = threading.Lock()


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    enabled: bool = True,
) -> None:
    """Send facta's spans and metrics to these providers instead of the global ones.

    Most applications need not call it: facta uses the global providers
    (``opentelemetry.trace.set_tracer_provider``, ``metrics.set_meter_provider``) without
    being told. A provider left out is the global one; ``enabled=False`` switches facta's
    telemetry off (and with it the traceparent in appended events); ``configure()`` goes
    back to the default. For tests, and applications that keep their providers out of the
    globals. Needs opentelemetry-api (``ImportError`` otherwise).
    """
    global _state, _configured
    made = None
    if enabled and (tracer_provider is not None or meter_provider is not None):
        made = _Telemetry(tracer_provider, meter_provider)
    with _lock:
        if made is not None:
            _state, _configured = made, True
        elif enabled:
            _state, _configured = _global, False
        else:
            _state, _configured = None, True


def _active() -> _Telemetry | None:
    """facta's telemetry if it is on: the one check every instrumented call makes."""
    state = _state
    if state is None:
        if _configured or _OTEL not in sys.modules:
            return None
        state = _load()
    return state if state.tracing() or state.measuring() else None


def _load() -> _Telemetry:
    """The telemetry on the global providers, made on first use."""
    global _global, _state
    with _lock:
        if _global is None:
            _global = _Telemetry(None, None)
        if not _configured:
            _state = _global
        return _global


# -- operations: a span (while tracing), a start time, attributes --------------------------


class _Operation:
    """One instrumented call: its span (None unless tracing), start time and attributes."""

    __slots__ = ("_context", "_token", "attributes", "span", "started", "telemetry")

    def __init__(self, telemetry: _Telemetry, name: str, kind: str, attributes: Attributes):
        self.telemetry, self.attributes = telemetry, attributes
        self.span: Span | None = None
        self._context: object = None
        if telemetry.tracing():
            trace = telemetry.trace
            span = telemetry.tracer.start_span(
                name, kind=getattr(trace.SpanKind, kind), attributes=attributes
            )
            self.span = span
            self._context = telemetry.context.attach(trace.set_span_in_context(span))
        self._token = _operation.set(self)
        self.started = time.perf_counter()

    def set(self, attributes: Attributes) -> None:
        """Add attributes to the span."""
        if self.span is not None:
            self.span.set_attributes(attributes)

    def fail(self, error: BaseException) -> None:
        """Record a failure on the span: the exception raised, or a handler's caught."""
        if self.span is not None and isinstance(error, Exception):
            from opentelemetry.trace import Status, StatusCode

            self.span.record_exception(error)
            self.span.set_attribute("error.type", type(error).__qualname__)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))

    def end(self) -> None:
        """End the span and leave its context."""
        _operation.reset(self._token)
        if self.span is not None:
            self.telemetry.context.detach(cast(Any, self._context))
            self.span.end()


_operation: ContextVar[_Operation | None] = ContextVar("facta_operation", default=None)


def _instrument(
    name: str, kind: str, describe: Callable[..., Attributes], done: Done
) -> Callable[[F], F]:
    """A decorator: while telemetry is on, each call is an operation (``describe`` gives
    its first attributes from the call's arguments, ``done`` completes it); otherwise a plain
    call. Works on sync and async functions alike."""

    def decorate(function: F) -> F:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def instrumented_async(*args: Any, **kwargs: Any) -> Any:
                telemetry = _active()
                if telemetry is None:
                    return await function(*args, **kwargs)
                operation = _Operation(telemetry, name, kind, _described(describe, args, kwargs))
                try:
                    result = await function(*args, **kwargs)
                except BaseException as e:
                    _finish(operation, done, args, kwargs, None, e)
                    raise
                _finish(operation, done, args, kwargs, result, None)
                return result

            return cast(F, instrumented_async)

        @functools.wraps(function)
        def instrumented(*args: Any, **kwargs: Any) -> Any:
            telemetry = _active()
            if telemetry is None:
                return function(*args, **kwargs)
            operation = _Operation(telemetry, name, kind, _described(describe, args, kwargs))
            try:
                result = function(*args, **kwargs)
            except BaseException as e:
                _finish(operation, done, args, kwargs, None, e)
                raise
            _finish(operation, done, args, kwargs, result, None)
            return result

        return cast(F, instrumented)

    return decorate


def _described(
    describe: Callable[..., Attributes], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Attributes:
    try:
        return describe(*args, **kwargs)
    except Exception:  # bad arguments: the call itself says what is wrong with them
        return {}


def _finish(
    operation: _Operation,
    done: Done,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
    error: BaseException | None,
) -> None:
    seconds = time.perf_counter() - operation.started
    try:
        if error is not None:
            operation.fail(error)
        done(operation, args, kwargs, result, error, seconds)
    except Exception:  # telemetry never fails what it watches
        log.debug("recording an operation failed", exc_info=True)
    finally:
        operation.end()


# -- what is instrumented ---------------------------------------------------------------------


def _db_system(recorder: object) -> str:
    """``db.system`` of a recorder, by the module of its class."""
    module = type(recorder).__module__
    for prefix, system in _DB_SYSTEMS:
        if module.startswith(prefix):
            return system
    return module.split(".", 1)[0]


_DB_SYSTEMS = (
    ("facta.backends.postgres", "postgresql"),
    ("facta.backends.sqlite", "sqlite"),
    ("facta.backends.memory", "memory"),
)


def _type_names(registry: EventRegistry, events: Iterable[object]) -> list[str]:
    """The sorted type names of events (or NewEvents); unregistered ones are left out."""
    names = set()
    for item in events:
        with contextlib.suppress(InvalidEvent):  # the append refuses it, naming it
            names.add(registry.type_of(item.data if isinstance(item, NewEvent) else item).name)
    return sorted(names)


def _describe_append(store: Any, appends: Sequence[Any], connection: object = None) -> Attributes:
    streams = [append[0] for append in appends]
    events = [event for append in appends for event in append[1]]
    attributes: Attributes = {"db.system": _db_system(store.recorder)}
    if len(streams) == 1:
        attributes["facta.stream_id"] = streams[0]
    else:
        attributes["facta.stream_ids"] = streams
    attributes["facta.event_count"] = len(events)
    attributes["facta.event_types"] = _type_names(store.codec.registry, events)
    return attributes


def _done_append(
    operation: _Operation,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    results: Any,
    error: BaseException | None,
    seconds: float,
) -> None:
    if error is None and len(results) == 1:
        (result,) = results
        operation.set(
            {"facta.version": result.version, "facta.already_appended": result.already_appended}
        )
    if operation.telemetry.measuring():
        attributes = {"db.system": operation.attributes.get("db.system", "")}
        if error is not None:
            attributes["error.type"] = type(error).__qualname__
        operation.telemetry.append_duration.record(seconds, attributes)


traced_append = _instrument("facta.append", "CLIENT", _describe_append, _done_append)
"""``append_many`` (and so ``append``) of the stores."""


def _describe_repository(repository: Any, aggregate_id: str, **_: object) -> Attributes:
    return {
        "db.system": _db_system(repository.store.recorder),
        "facta.stream_id": aggregate_id,
        "facta.aggregate_type": repository.aggregate_type.type_name,
    }


def _done_version(
    operation: _Operation,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
    error: BaseException | None,
    seconds: float,
) -> None:
    """The version an aggregate was loaded or saved at."""
    if result is not None and error is None:
        operation.set({"facta.version": result.version})


traced_load = _instrument("facta.load", "INTERNAL", _describe_repository, _done_version)
"""``Repository.load``; the load itself reports what it did with :func:`loaded`."""


def loaded(replayed: int, snapshot_hit: bool | None) -> None:
    """What a load did, said inside its operation: the events it replayed, and whether a
    snapshot served it (None: the aggregate type takes no snapshots)."""
    operation = _operation.get()
    if operation is None:
        return
    if operation.span is not None:
        operation.set({"facta.event_count": replayed})
        if snapshot_hit is not None:
            operation.set({"facta.snapshot.hit": snapshot_hit})
    telemetry = operation.telemetry
    if telemetry.measuring():
        attributes = {
            "db.system": operation.attributes.get("db.system", ""),
            "facta.aggregate_type": operation.attributes.get("facta.aggregate_type", ""),
        }
        telemetry.load_events.record(replayed, attributes)
        if snapshot_hit is not None:
            result = "hit" if snapshot_hit else "miss"
            telemetry.snapshot_lookups.add(1, {**attributes, "facta.snapshot.result": result})


def _describe_save(repository: Any, aggregate: Any, **_: object) -> Attributes:
    attributes = _describe_repository(repository, aggregate.id)
    pending = aggregate.pending_events
    attributes["facta.event_count"] = len(pending)
    attributes["facta.event_types"] = _type_names(repository.store.codec.registry, pending)
    return attributes


traced_save = _instrument("facta.save", "INTERNAL", _describe_save, _done_version)
"""``Repository.save``."""


def _describe_snapshot(repository: Any, aggregate: Any) -> Attributes:
    attributes = _describe_repository(repository, aggregate.id)
    attributes["facta.version"] = aggregate.version
    return attributes


def _done_nothing(
    operation: _Operation,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
    error: BaseException | None,
    seconds: float,
) -> None:
    """Nothing to add: the attributes were known at the start."""


traced_snapshot = _instrument("facta.snapshot", "CLIENT", _describe_snapshot, _done_nothing)
"""The repository's snapshot writes."""


def _describe_projection_batch(runner: Any, events: Sequence[RecordedEvent]) -> Attributes:
    return {
        "db.system": _db_system(runner.store.recorder),
        "facta.projection": runner.name,
        "facta.event_count": len(events),
    }


def _done_projection_batch(
    operation: _Operation,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    failure: Any,
    error: BaseException | None,
    seconds: float,
) -> None:
    if error is not None:
        return
    if failure is not None:  # (index, exception): rolled back (or stopped) at that event
        index, cause = failure
        operation.set({"facta.failed_index": index})
        operation.fail(cause)
        return
    events: Sequence[RecordedEvent] = args[1]
    last = events[-1]
    operation.set({"facta.checkpoint": _checkpoint_text(last.checkpoint)})
    if operation.telemetry.measuring():
        operation.telemetry.projection_lag.record(
            _age(last.recorded_at), {"facta.projection": operation.attributes["facta.projection"]}
        )


traced_projection_batch = _instrument(
    "facta.projection.batch", "CONSUMER", _describe_projection_batch, _done_projection_batch
)
"""A projection runner's batch: its handlers and checkpoint in one transaction."""


class _NoOperation:
    """What :func:`relay_batch` gives while telemetry is off: does nothing."""

    def __enter__(self) -> _NoOperation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def acknowledged(self, rows: Sequence[StoredEvent], count: int) -> None:
        """Nothing to record."""


_NO_OPERATION = _NoOperation()


class _RelayBatch:
    """A relay's batch as an operation: a span around publishing it, its lag measured."""

    def __init__(self, telemetry: _Telemetry, attributes: Attributes) -> None:
        self._telemetry, self._attributes = telemetry, attributes
        self._operation: _Operation | None = None

    def __enter__(self) -> _RelayBatch:
        self._operation = _Operation(
            self._telemetry, "facta.relay.batch", "PRODUCER", self._attributes
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        operation, self._operation = self._operation, None
        if operation is None:
            return
        try:
            if exc is not None:
                operation.fail(exc)
        finally:
            operation.end()

    def acknowledged(self, rows: Sequence[StoredEvent], count: int) -> None:
        """The broker acknowledged the first ``count`` of ``rows``."""
        operation = self._operation
        if operation is None:
            return
        operation.set({"facta.event_count": count})
        if not count:
            return
        last = rows[count - 1]
        operation.set({"facta.checkpoint": _checkpoint_text(last.checkpoint)})
        if operation.telemetry.measuring():
            operation.telemetry.relay_lag.record(
                _age(last.recorded_at), {"facta.relay": self._attributes["facta.relay"]}
            )


def relay_batch(relay: Any, rows: Sequence[StoredEvent]) -> _RelayBatch | _NoOperation:
    """A context manager around publishing a relay's batch of ``rows``."""
    telemetry = _active()
    if telemetry is None:
        return _NO_OPERATION
    return _RelayBatch(
        telemetry,
        {
            "db.system": _db_system(relay.store.recorder),
            "facta.relay": relay.name,
            "messaging.system": type(relay.broker).__module__.rsplit(".", 1)[-1],
            "messaging.batch.message_count": len(rows),
        },
    )


def _age(recorded_at: Any) -> float:
    """Seconds since ``recorded_at`` (by the database's clock; never below 0)."""
    return max(0.0, time.time() - float(recorded_at.timestamp()))


def _checkpoint_text(checkpoint: tuple[int, int]) -> str:
    return f"{checkpoint[0]}:{checkpoint[1]}"


# -- the span an event was appended in --------------------------------------------------------


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the valid span in force while facta traces; else None."""
    state = _active()
    if state is None or not state.tracing():
        return None
    context = state.trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def _facta_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("facta")
    except PackageNotFoundError:
        return None


def _histogram(meter: Any, name: str, unit: str, description: str, buckets: Sequence[float]) -> Any:
    try:  # API 1.30 and later take buckets as advice (seconds need others than milliseconds)
        return meter.create_histogram(
            name, unit, description, explicit_bucket_boundaries_advisory=buckets
        )
    except TypeError:
        return meter.create_histogram(name, unit, description)


# -- reader lag, observed for the stores asked for --------------------------------------------


class ReaderLagObservation:
    """A store whose reader lag the gauges report; :meth:`close` (or leaving the ``with``
    block) stops that. ``observed`` is False where the store's backend has no reader lag."""

    def __init__(
        self, store: AsyncEventStore | EventStore, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self._store = weakref.ref(store)
        self._loop = loop
        self._answer: tuple[float, Any] | None = None
        self.observed = False
        self.location = store.recorder.location
        self.attributes = {"db.system": _db_system(store.recorder), "facta.store": self.location}

    def reader_lag(self) -> Any | None:
        """The store's ``ReaderLag`` (one under a second old is reused), or None when it
        cannot be asked from this thread now, or is gone."""
        now = time.monotonic()
        answer = self._answer
        if answer is not None and now - answer[0] < _LAG_FRESH:
            return answer[1]
        store = self._store()
        if store is None:
            self.close()
            return None
        recorder: Any = store.recorder
        loop = self._loop
        if loop is None:
            lag = recorder.reader_lag()
        elif loop.is_closed():
            self.close()
            return None
        else:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:  # on the store's own loop: waiting would block it
                return None
            future = asyncio.run_coroutine_threadsafe(recorder.reader_lag(), loop)
            lag = future.result(_LAG_TIMEOUT)
        self._answer = (now, lag)
        return lag

    def close(self) -> None:
        """Stop observing the store."""
        self.observed = False
        with _lock:
            if self in _observed:
                _observed.remove(self)

    def __enter__(self) -> ReaderLagObservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_observed: list[ReaderLagObservation] = []


def observe_reader_lag(store: AsyncEventStore | EventStore) -> ReaderLagObservation:
    """Report the store's reader lag (``store.recorder.reader_lag()``) in the gauges
    ``facta.reader.held_back`` and ``facta.reader.oldest_transaction_age`` (attributes
    ``facta.store``, ``db.system``) each time metrics are collected, until the observation
    is closed or the store is gone.

    Only PostgreSQL holds readers back (its horizon); a store whose recorder has no
    ``reader_lag`` is not observed (``observed`` is False). An async store is asked on its
    event loop, so call this inside it; a collection made on that loop's own thread skips
    the store rather than block the loop. Needs opentelemetry-api (``ImportError``).
    """
    try:
        import opentelemetry.metrics  # noqa: F401  (the gauges' home)
    except ImportError:
        raise ImportError(
            "facta's metrics need opentelemetry-api: pip install 'facta[otel]'"
        ) from None
    reader_lag = getattr(store.recorder, "reader_lag", None)
    asynchronous = inspect.iscoroutinefunction(reader_lag)
    observation = ReaderLagObservation(store, asyncio.get_running_loop() if asynchronous else None)
    if reader_lag is None:
        return observation
    if not _configured:
        _load()  # the gauges are made with the rest of facta's instruments
    observation.observed = True
    with _lock:
        _observed.append(observation)
    return observation


def _observations(value: Callable[[Any], float]) -> Iterable[Observation]:
    from opentelemetry.metrics import Observation

    with _lock:
        observed = list(_observed)
    found = []
    for observation in observed:
        try:
            lag = observation.reader_lag()
        except Exception as e:  # a closed store, a failed query: not observed this time
            log.debug("the reader lag of %s was not observed: %s", observation.location, e)
            continue
        if lag is not None:
            found.append(Observation(value(lag), observation.attributes))
    return found


def _observe_held_back(options: CallbackOptions) -> Iterable[Observation]:
    return _observations(lambda lag: lag.held_back)


def _observe_oldest_age(options: CallbackOptions) -> Iterable[Observation]:
    def seconds(lag: Any) -> float:
        age = lag.oldest_transaction_age
        return 0.0 if age is None else float(age.total_seconds())

    return _observations(seconds)
