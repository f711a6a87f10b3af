"""Append rate on 1 vs 3 partitions: the same writers, spread over one server or three.

    python bench/partitions.py                          # 6 writers x 400 appends, 3 rounds
    python bench/partitions.py --writers 9 --events 1000 --rounds 5 --fast
    python bench/partitions.py --smoke                  # a tiny run (tests/test_bench_smoke.py)

Three private PostgreSQL servers are started (``facta.testing.clusters``; durable, fsync on,
unless ``--fast``). Each setup gets a fresh schema on each server and the same ``--writers``
writer processes, each appending ``--events`` single-event appends (the expected version
checked) to streams of its own; writer ``i``'s streams are routed to partition ``i mod 3``,
so on 3 partitions the writers are spread evenly, and on 1 they all share it. The setups:
``postgres``, a plain store on server 1 (the baseline); ``partitioned x1``, a partitioned
store of one partition on server 1 (the routing's cost); ``partitioned x3``, one partition on
each server. Every setup runs once per round, in an order that rotates; the table gives the
median events/s, its ratio to the baseline, and how busy the machine's cores were (from
``/proc/stat``; near 100% the cores, not the servers, set the rate), and the CPU time spent
per event by the writer processes while appending (client) and by the servers' backends (server: the
postmasters' reaped children), the figures of a model for N servers: with C cores, appends
cannot go faster than C / (client + server CPU per event), however many servers there are.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import facta
from facta.backends.partitioned import connect_partitioned
from facta.backends.partitioned.routing import Routes
from facta.testing.clusters import Cluster, private_cluster

NAMES = ("p1", "p2", "p3")
SETUPS = ("postgres", "partitioned x1", "partitioned x3")


@facta.event("bench.partitions.Appended")
@dataclass(frozen=True)
class Appended:
    writer: int
    n: int


def urls_for(setup: str, servers: list[Cluster], schema: str) -> dict[str, str]:
    """The partitions of a setup: name to URL (the plain store: its one URL, under "p1")."""
    count = 3 if setup == "partitioned x3" else 1
    return {name: server.url(schema) for name, server in zip(NAMES, servers[:count], strict=False)}


def open_store(setup: str, urls: dict[str, str]) -> facta.EventStore:
    if setup == "postgres":
        return facta.connect(urls["p1"], pool_size=1)
    return connect_partitioned(urls, pool_size=1)


def streams_of(writer: int, count: int) -> list[str]:
    """``count`` stream ids that 3 even partitions route to partition ``writer mod 3``."""
    routes, wanted = Routes.even(NAMES), NAMES[writer % 3]
    found: list[str] = []
    n = 0
    while len(found) < count:
        stream = f"w{writer}-{n}"
        if routes.partition_of(stream) == wanted:
            found.append(stream)
        n += 1
    return found


def write(
    setup: str, urls: dict[str, str], writer: int, events: int, start: Barrier, cpu: Queue[float]
) -> None:
    """One writer process: ``events`` single-event appends over 10 streams of its own; puts
    the CPU seconds they took on ``cpu``."""
    streams = streams_of(writer, 10)
    with open_store(setup, urls) as store:
        store.stream_version(streams[0])  # connect (and read the routes) before the clock
        start.wait()
        began = time.process_time()
        for n in range(events):
            stream = streams[n % len(streams)]
            store.append(stream, [Appended(writer, n)], n // len(streams))
        cpu.put(time.process_time() - began)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def server_seconds(servers: list[Cluster]) -> float:
    """CPU seconds of the servers' postmasters and their reaped children (ended backends)."""
    total = 0
    for server in servers:
        pid = (server.data / "postmaster.pid").read_text().split("\n", 1)[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    setup: str
    seconds: float
    events: int
    busy: float  # fraction of all cores' time spent busy
    client: float  # CPU seconds of the writer processes while appending
    server: float  # CPU seconds of the servers' backends


def run_once(setup: str, servers: list[Cluster], writers: int, events: int) -> Run:
    urls = urls_for(setup, servers, f"bench_{uuid.uuid4().hex[:8]}")
    with open_store(setup, urls) as store:  # make the schemas (and catalog) first
        store.stream_version("warm-up")
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(writers + 1)
    cpu: Queue[float] = spawn.Queue()
    time.sleep(0.5)  # the servers reap the warm-up's backends
    server = server_seconds(servers)
    processes = [
        spawn.Process(target=write, args=(setup, urls, w, events, start, cpu))
        for w in range(writers)
    ]
    for process in processes:
        process.start()
    start.wait()
    began, ticks = time.perf_counter(), cpu_ticks()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - began
    busy_after, total_after = cpu_ticks()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise SystemExit(f"{setup}: writer processes failed (exit codes {failed})")
    busy = (busy_after - ticks[0]) / max(1, total_after - ticks[1])
    time.sleep(0.5)  # the servers reap the writers' backends
    client, server = sum(cpu.get() for _ in processes), server_seconds(servers) - server
    return Run(setup, seconds, writers * events, busy, client, server)


@contextlib.contextmanager
def servers(count: int, fast: bool) -> Iterator[list[Cluster]]:
    with contextlib.ExitStack() as stack:
        settings = {"max_connections": "100"}
        started = [
            stack.enter_context(private_cluster(durable=not fast, **settings)) for _ in range(count)
        ]
        yield started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=6, help="writer processes (default 6)")
    parser.add_argument("--events", type=int, default=400, help="appends per writer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fast", action="store_true", help="servers without fsync")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 3 x 20, 1 round")
    args = parser.parse_args()
    if args.smoke:
        args.writers, args.events, args.rounds, args.fast = 3, 20, 1, True
    runs: dict[str, list[Run]] = {setup: [] for setup in SETUPS}
    with servers(3, args.fast) as started:
        for round_ in range(args.rounds):
            order = SETUPS[round_ % 3 :] + SETUPS[: round_ % 3]
            for setup in order:
                run = run_once(setup, started, args.writers, args.events)
                runs[setup].append(run)
                rate = run.events / run.seconds
                print(f"round {round_ + 1} {setup}: {rate:,.0f} events/s", file=sys.stderr)
    report(runs, args)


def report(runs: dict[str, list[Run]], args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    durability = "no fsync" if args.fast else "fsync on"
    print(
        f"**Append rate, {args.writers} writer processes x {args.events} single-event appends, "
        f"median of {args.rounds} ({cores} cores, {durability})**\n"
    )
    print(
        "| setup | servers | events/s | ratio | cores busy | client CPU/event | server CPU/event |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    baseline = statistics.median(r.events / r.seconds for r in runs["postgres"])
    for setup in SETUPS:
        rate = statistics.median(r.events / r.seconds for r in runs[setup])
        busy = statistics.median(r.busy for r in runs[setup])
        count = 3 if setup == "partitioned x3" else 1
        client = statistics.median(r.client / r.events for r in runs[setup]) * 1e6
        server = statistics.median(r.server / r.events for r in runs[setup]) * 1e6
        print(
            f"| {setup} | {count} | {rate:,.0f} | {rate / baseline:.2f} | {busy:.0%} "
            f"| {client:,.0f} µs | {server:,.0f} µs |"
        )


if __name__ == "__main__":
    main()
