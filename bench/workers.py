"""Sliced projection workers: projection throughput with 1, 2 and 3 worker processes.

    python bench/workers.py                      # 40,000 events, 4,000 streams, 3 rounds
    python bench/workers.py --events 100000 --rounds 5 --ranges 32
    python bench/workers.py --smoke              # a tiny run (the test-suite's smoke test)

The store (a schema of its own on the PostgreSQL server of bench.model) is filled once. Then,
for each worker count in every round (the order rotates), the projection starts over (its read
model emptied, its ranges back at the log's start) and that many worker processes
(``facta.projections.SlicedRunner``, one each) join it; once all have joined, they are let go
together and timed until the read model holds every event. A plain ``ProjectionRunner`` in one
process is measured the same way, as the baseline. The projection is a typical one:
one upsert per event, returned as a ``Write`` (a batch's sent with one ``executemany``).

Printed: events/s per worker count (median of the rounds), the ratio to one worker, and where
the CPU went while they ran: the workers' own CPU (their processes' user + system time while timed) and the
whole machine's busy share of its cores (from /proc/stat; the rest of it is mostly the server).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import sql

import facta
from bench.model import POSTGRES_URL
from bench.workloads import create_schema, drop_schema
from facta.projections import Projection, ProjectionRunner, SlicedRunner, Write, handles

ROOT = Path(__file__).resolve().parent.parent
NAME = "balances"


@facta.event("bench.workers.Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int


class Balances(Projection[psycopg.Connection[Any]]):
    """Each stream's balance and event count: one upsert per event."""

    name = NAME

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS balances (stream_id text PRIMARY KEY, events bigint,"
            " total bigint)"
        )

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("TRUNCATE balances")

    @handles(Deposited, writes_only=True)  # the runner sends a batch's writes together
    def deposited(self, event: facta.RecordedEvent[Deposited], conn: Any) -> Write:
        return Write(
            "INSERT INTO balances AS b VALUES (%s, 1, %s) ON CONFLICT (stream_id) DO UPDATE"
            " SET events = b.events + 1, total = b.total + excluded.total",
            (event.stream_id, event.data.amount),
        )


def fill(url: str, events: int, streams: int) -> None:
    """``events`` deposits spread evenly over ``streams`` streams, 100 per append call."""
    with facta.connect(url) as store:
        per_stream = max(1, events // streams)
        for n in range(streams):
            stream = f"account-{n}"
            for start in range(0, per_stream, 100):
                count = min(100, per_stream - start)
                store.append(stream, [Deposited(i) for i in range(count)], expected_version=start)


def applied(url: str, schema: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            sql.SQL("SELECT coalesce(sum(events), 0) FROM {}").format(
                sql.Identifier(schema, "balances")
            )
        ).fetchone()
    return int(found[0]) if found else 0


def start_over(url: str, schema: str) -> None:
    """The projection back to nothing: no read model rows, no ranges, no workers."""
    tables = (
        "balances",
        "facta_sliced_projections",
        "facta_projection_workers",
        "facta_projections",
    )
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        for table in tables:
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, table)))


def live_workers(url: str, schema: str) -> int:
    """Sliced workers that joined, or 1 for a plain runner that opened (its row exists)."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            sql.SQL(
                "SELECT (SELECT count(*) FROM {} WHERE expires_at > now())"
                " + (SELECT count(*) FROM {})"
            ).format(
                sql.Identifier(schema, "facta_projection_workers"),
                sql.Identifier(schema, "facta_projections"),
            )
        ).fetchone()
    return int(found[0]) if found else 0


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes used so far, from /proc/PID/stat."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def busy_jiffies() -> tuple[int, int]:
    """The machine's (busy, total) CPU jiffies so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


@dataclass
class Round:
    workers: int  # 0: one plain ProjectionRunner (the baseline)
    events_per_second: float
    worker_cpu: float  # seconds of CPU the workers used while timed, all together
    seconds: float
    machine_busy: float  # share of all cores busy meanwhile


def measure(
    store_url: str, schema: str, workers: int, events: int, options: argparse.Namespace
) -> Round:
    start_over(POSTGRES_URL, schema)
    go = Path(f"/tmp/facta-bench-workers-{uuid.uuid4().hex}")
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", store_url, str(go)]
    command += ["--ranges", str(options.ranges), "--batch-size", str(options.batch_size)]
    command += ["--plain"] if workers == 0 else []
    processes = [subprocess.Popen(command, cwd=ROOT) for _ in range(max(1, workers))]
    try:
        deadline = time.monotonic() + 60
        while live_workers(POSTGRES_URL, schema) < max(1, workers):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError("the workers did not all join")
            time.sleep(0.02)
        pids = [p.pid for p in processes]
        cpu0, (busy0, total0) = process_cpu(pids), busy_jiffies()
        started = time.perf_counter()
        go.touch()
        while applied(POSTGRES_URL, schema) < events:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError("a worker ended early")
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        cpu, (busy1, total1) = process_cpu(pids) - cpu0, busy_jiffies()
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait()
        go.unlink(missing_ok=True)
    busy = (busy1 - busy0) / max(1, total1 - total0)
    return Round(workers, events / seconds, cpu, seconds, busy)


def work(url: str, go: Path, ranges: int, batch_size: int, plain: bool) -> None:
    """One worker process (or the plain runner): join, wait for the start, run until SIGTERM."""
    with facta.connect(url) as store:
        runner: ProjectionRunner[Any]
        if plain:
            runner = ProjectionRunner(store, Balances(), batch_size=batch_size, poll_interval=0.2)
        else:
            runner = SlicedRunner(
                store, Balances(), ranges=ranges, batch_size=batch_size, poll_interval=0.2
            )
        with runner:
            signal.signal(signal.SIGTERM, lambda *_: runner.stop())
            while not go.exists():
                time.sleep(0.005)
            runner.run()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--streams", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ranges", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--workers", default="1,2,3", help="worker counts, e.g. 1,2,3")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 600 events, 1 round")
    parser.add_argument("--worker", nargs=2, metavar=("URL", "GO"), help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        work(
            options.worker[0],
            Path(options.worker[1]),
            options.ranges,
            options.batch_size,
            options.plain,
        )
        return
    if options.smoke:
        options.events, options.streams, options.rounds = 600, 60, 1
    counts = [0, *(int(n) for n in options.workers.split(","))]
    schema = f"bench_workers_{uuid.uuid4().hex[:8]}"
    store_url = f"{POSTGRES_URL}?schema={schema}"
    create_schema(schema)
    try:
        fill(store_url, options.events, options.streams)
        events = (options.events // options.streams) * options.streams
        with facta.connect(store_url) as store:  # the read model's table, once
            SlicedRunner(store, Balances(), ranges=options.ranges).open()
        rounds: list[Round] = []
        for n in range(options.rounds):
            order = counts[n % len(counts) :] + counts[: n % len(counts)]
            for workers in order:
                result = measure(store_url, schema, workers, events, options)
                print(
                    f"round {n + 1}: {workers} worker(s): {result.events_per_second:,.0f} events/s",
                    file=sys.stderr,
                )
                rounds.append(result)
    finally:
        drop_schema(schema)
    report(rounds, counts, events, options)


def report(
    rounds: list[Round], counts: list[int], events: int, options: argparse.Namespace
) -> None:
    cores = os.cpu_count() or 1
    print(
        f"**Sliced projection workers, {events:,} events, {options.streams:,} streams, "
        f"{options.ranges} ranges, batches of {options.batch_size}** "
        f"(median of {options.rounds} rounds; {cores} cores)\n"
    )
    print(
        "| workers | events/s | vs 1 worker | vs plain runner | workers' CPU s "
        "| workers' CPU/wall | machine busy |"
    )
    print(
        "|--------:|---------:|------------:|----------------:|---------------:"
        "|------------------:|-------------:|"
    )
    base = plain = None
    for workers in counts:
        mine = [r for r in rounds if r.workers == workers]
        speed = statistics.median(r.events_per_second for r in mine)
        cpu = statistics.median(r.worker_cpu for r in mine)
        wall = statistics.median(r.seconds for r in mine)
        busy = statistics.median(r.machine_busy for r in mine)
        if workers == 0:
            plain = speed
        elif base is None:
            base = speed
        label = "plain runner" if workers == 0 else str(workers)
        versus = "" if base is None else f"{speed / base:.2f}x"
        print(
            f"| {label} | {speed:,.0f} | {versus} | {speed / (plain or speed):.2f}x | {cpu:.2f} | "
            f"{cpu / wall:.2f} cores | {busy:.0%} of {cores} |"
        )


if __name__ == "__main__":
    main()
