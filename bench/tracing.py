"""What facta's OpenTelemetry instrumentation costs: W1 (new aggregates, one event, one save
each) and W3 (loads of a 10,000-event aggregate), with telemetry in each of its states.

    python bench/tracing.py                               # memory, SQLite, PostgreSQL; 5 rounds
    python bench/tracing.py --backends memory --rounds 3
    python bench/tracing.py --before /tmp/facta-before/src   # also another facta, for reference

The states, each measured in a process of its own, in an order that rotates every round:

- ``absent``: OpenTelemetry is never imported (facta's check: one look into ``sys.modules``);
- ``idle``: the API and SDK are imported but no provider is set (a look at the providers);
- ``exported``: a global SDK ``TracerProvider`` with a ``BatchSpanProcessor`` and an exporter
  that drops what it gets (the cost up to the export, not the export's own), and a
  ``MeterProvider`` with an ``InMemoryMetricReader``; every append also puts its traceparent
  into the event's metadata;
- ``before`` (with ``--before SRC``): the facta found at SRC (e.g. ``git archive`` of an older
  commit), OpenTelemetry never imported: the same code without the hooks.

Per state and round, the median of ``--trials`` timed trials after one untimed warm-up;
the table shows the median over the rounds, and each state's cost against ``absent``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
STATES = ("absent", "idle", "exported")
BACKENDS = ("memory", "memory-async", "sqlite", "postgres")
W1_SAVES = {"memory": 5000, "memory-async": 5000, "sqlite": 300, "postgres": 300}
W3_LENGTH = 10_000


# -- the worker: one state, one backend ---------------------------------------------------------


def set_up(state: str) -> None:
    """Put OpenTelemetry in ``state`` before facta is used."""
    if state in ("absent", "before"):
        return
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    if state == "exported":

        class Dropping(SpanExporter):
            def export(self, spans: Sequence[Any]) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Dropping()))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def url_of(backend: str, schema: str) -> str:
    from bench.model import POSTGRES_URL

    if backend.startswith("memory"):
        return "memory://"
    if backend == "sqlite":
        import tempfile

        return f"sqlite:///{tempfile.mkdtemp(prefix='facta-tracing-')}/events.db"
    return f"{POSTGRES_URL}?schema={schema}"


def worker(state: str, backend: str, trials: int, schema: str) -> dict[str, list[float]]:
    """Seconds per W1 save and per W3 load, one figure per trial; and the seconds the
    checks a save makes take while telemetry is off (``checks``)."""
    set_up(state)
    checks = checks_of_a_save(trials)
    if backend.endswith("-async"):
        import asyncio

        return {**asyncio.run(_worker_async(backend, trials, schema)), "checks": checks}
    import facta
    from bench.facta_systems import Cart
    from bench.model import field_pool

    fields = field_pool()
    results: dict[str, list[float]] = {"W1": [], "W3": []}
    with facta.connect(url_of(backend, schema)) as store:
        repo = facta.Repository(store, Cart)
        long = Cart()
        for i in range(W3_LENGTH):
            long.add_item(fields[i % len(fields)])
            if len(long.pending_events) == 1000:
                repo.save(long)
        saves = W1_SAVES[backend]

        def w1() -> None:
            for i in range(saves):
                cart = Cart()
                cart.add_item(fields[i % len(fields)])
                repo.save(cart)

        def w3() -> None:
            assert repo.load(long.id).version == W3_LENGTH

        for name, run, count in (("W1", w1, saves), ("W3", w3, 1)):
            for trial in range(trials + 1):
                took = timed(run)
                if trial:  # the first is a warm-up
                    results[name].append(took / count)
    return {**results, "checks": checks}


def checks_of_a_save(trials: int) -> list[float]:
    """Seconds for what a save checks while telemetry is off: whether it is on, for the save
    and for its append, and the context's ids and trace for the metadata (best of 5 runs of
    100,000, per trial). Empty where facta has no telemetry (``before``)."""
    import timeit

    try:
        from facta import telemetry
        from facta.context import ambient
    except ImportError:
        return []
    if telemetry._active() is not None:  # on: the spans cost far more; W1 shows it
        return []
    active, traceparent = telemetry._active, telemetry.traceparent

    def checks() -> None:
        active(), active(), ambient(traceparent())

    return [min(timeit.repeat(checks, number=100_000, repeat=5)) / 100_000 for _ in range(trials)]


async def _worker_async(backend: str, trials: int, schema: str) -> dict[str, list[float]]:
    import facta
    from bench.facta_systems import Cart
    from bench.model import field_pool

    fields = field_pool()
    results: dict[str, list[float]] = {"W1": [], "W3": []}
    async with facta.connect_async(url_of(backend, schema)) as store:
        repo = facta.AsyncRepository(store, Cart)
        long = Cart()
        for i in range(W3_LENGTH):
            long.add_item(fields[i % len(fields)])
            if len(long.pending_events) == 1000:
                await repo.save(long)
        saves = W1_SAVES[backend]
        for trial in range(trials + 1):
            started = time.perf_counter()
            for i in range(saves):
                cart = Cart()
                cart.add_item(fields[i % len(fields)])
                await repo.save(cart)
            if trial:
                results["W1"].append((time.perf_counter() - started) / saves)
        for trial in range(trials + 1):
            started = time.perf_counter()
            assert (await repo.load(long.id)).version == W3_LENGTH
            if trial:
                results["W3"].append(time.perf_counter() - started)
    return results


def timed(run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


# -- the parent: rounds over the states, then the table -----------------------------------------


def measure(
    state: str, backend: str, trials: int, before: str | None, round_: int
) -> dict[str, list[float]]:
    schema = f"facta_tracing_{os.getpid()}_{round_}_{state}"
    environment = dict(os.environ)
    if state == "before" and before is not None:
        environment["PYTHONPATH"] = os.pathsep.join([before, str(ROOT)])
    else:
        environment["PYTHONPATH"] = str(ROOT)
    try:
        output = subprocess.run(
            [sys.executable, __file__, "--worker", state, backend, str(trials), schema],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=environment,
        ).stdout
    finally:
        if backend == "postgres":
            from bench.workloads import drop_schema

            drop_schema(schema)
    found: dict[str, list[float]] = json.loads(output.splitlines()[-1])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--before", help="the src folder of another facta, measured as 'before'")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        state, backend, trials, schema = args.worker
        print(json.dumps(worker(state, backend, int(trials), schema)))
        return 0
    states = (("before",) if args.before else ()) + STATES
    backends = args.backends.split(",")
    medians: dict[tuple[str, str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for backend in backends:
            shift = round_ % len(states)
            for state in states[shift:] + states[:shift]:
                print(f"round {round_ + 1}: {backend} {state}", file=sys.stderr)
                found = measure(state, backend, args.trials, args.before, round_)
                for workload, figures in found.items():
                    if figures:
                        key = (workload, backend, state)
                        medians.setdefault(key, []).append(statistics.median(figures))
    print(table(medians, backends, states))
    return 0


def table(
    medians: dict[tuple[str, str, str], list[float]], backends: list[str], states: Sequence[str]
) -> str:
    head = ["workload", "backend", *states, *(f"{s} vs absent" for s in states if s != "absent")]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for workload, unit, scale in (("W1", "µs/save", 1e6), ("W3", "ms/load", 1e3)):
        for backend in backends:
            figures = {s: statistics.median(medians[(workload, backend, s)]) for s in states}
            cells = [f"{workload} ({unit})", backend]
            cells += [f"{figures[s] * scale:.1f}" for s in states]
            cells += [
                f"{(figures[s] / figures['absent'] - 1) * 100:+.1f} %"
                for s in states
                if s != "absent"
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("The checks a save makes while telemetry is off (ns, median of the rounds' best):")
    for state in ("absent", "idle"):
        checks = [f for b in backends for f in medians.get(("checks", b, state), [])]
        if checks:
            lines.append(f"- {state}: {statistics.median(checks) * 1e9:.0f} ns")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
