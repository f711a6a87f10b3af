"""Reads from a hot standby against reads from the primary, on the same data in the same run.

    python bench/replicas.py                       # 100,000 events in 1,000 streams, 5 rounds
    python bench/replicas.py --events 20000 --rounds 3 --durable
    python bench/replicas.py --smoke               # a tiny run (the test-suite's smoke test)

A private primary and its streaming replica (``facta.testing.clusters``; test settings, no
fsync, unless ``--durable``) get ``--events`` events of the suite's ``ItemAdded`` in 1,000
streams. Then, each round, in an order that rotates every round:

- ``read_all``: the whole global log, in pages of 1,000, events/s;
- ``loads``: ``replay_into`` of 200 streams taken at random, loads/s;
- ``read_all x2``: two reader processes at once, each reading the whole log: both on the
  primary, both on the replica, or one on each (events/s of the two together);
- ``append W1``: single-event appends, one at a time, by a store without ``replicas=`` and by
  one with them (which asks for each commit's WAL position: a round trip more), and by one
  with them and ``commit_lsn=False`` (which does not).

Each is measured from the primary (a store without replicas) and from the replica (a store
with ``replicas=``, which reads there), so the ratio column is replica / primary. Both servers
share this machine's cores with the readers: what a replica buys on other hardware is the
primary's CPU and I/O left to writers, which one machine cannot show (see the note printed
below the table).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import facta
from bench.facta_systems import ItemAdded
from bench.model import field_pool
from facta.appending import StreamAppend
from facta.testing.clusters import Cluster, private_cluster

STREAMS = 1000
LOADS = 200
FIELDS = field_pool()


def fill(url: str, events: int) -> None:
    """``events`` events in ``STREAMS`` streams, appended 100 at a time."""
    with facta.connect(url) as store:
        per = max(1, events // STREAMS)
        batch = []
        for n in range(STREAMS):
            items = [ItemAdded(*FIELDS[(n + k) % len(FIELDS)]) for k in range(per)]
            batch.append(StreamAppend(f"cart-{n}", items, facta.NO_STREAM))
            if len(batch) == 100:
                store.append_many(batch)
                batch = []
        if batch:
            store.append_many(batch)


def opened(url: str, replicas: list[str], commit_lsn: bool = True) -> facta.EventStore:
    """A store, connected before any timing starts."""
    store = (
        facta.connect(url, replicas=replicas, commit_lsn=commit_lsn)
        if replicas
        else facta.connect(url)
    )
    store.stream_version("warm-up")
    if replicas:
        list(store.read_stream("warm-up"))  # the replica's pool too
    return store


def read_all(url: str, replicas: list[str]) -> tuple[int, float, float]:
    """Read the whole log: the number of events, and when it started and ended."""
    with opened(url, replicas) as store:
        started = time.time()
        count = sum(1 for _ in store.read_all(batch_size=1000))
        return count, started, time.time()


def loads(url: str, replicas: list[str]) -> tuple[int, float, float]:
    """``LOADS`` replays of random streams."""
    rng = random.Random(7)
    with opened(url, replicas) as store:
        started = time.time()
        for _ in range(LOADS):
            store.replay_into(f"cart-{rng.randrange(STREAMS)}", lambda event: None)
        return LOADS, started, time.time()


def appends(
    url: str, replicas: list[str], count: int, commit_lsn: bool = True
) -> tuple[int, float, float]:
    """``count`` single-event appends (W1), one at a time."""
    with opened(url, replicas, commit_lsn) as store:
        tag = random.randrange(10**9)
        started = time.time()
        for n in range(count):
            event = ItemAdded(*FIELDS[n % len(FIELDS)])
            store.append(f"w1-{tag}-{n}", [event], facta.NO_STREAM)
        return count, started, time.time()


def _read_all_job(job: tuple[str, list[str]]) -> tuple[int, float, float]:
    return read_all(*job)


def two_readers(primary_url: str, replica_url: str, where: tuple[str, str]) -> float:
    """Events/s of two processes reading the whole log at once, each from the primary or
    the replica (from the first start to the last end)."""
    jobs = [(primary_url, [replica_url] if side == "replica" else []) for side in where]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        done = pool.map(_read_all_job, jobs)
    count = sum(items for items, _, _ in done)
    return count / (max(end for _, _, end in done) - min(start for _, start, _ in done))


def timed(work: Callable[[], tuple[int, float, float]]) -> float:
    """Items per second of one run of ``work`` (its own timing: connecting is left out)."""
    items, started, ended = work()
    return items / (ended - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="the log's length")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each measure")
    parser.add_argument("--appends", type=int, default=2000, help="W1 appends per run")
    parser.add_argument("--durable", action="store_true", help="servers that fsync")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to see it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.rounds, args.appends = 2000, 1, 50
    with private_cluster(durable=args.durable) as primary, primary.replica() as standby:
        results = measure(primary, standby, args)
    print_table(results, args)


def measure(primary: Cluster, standby: Cluster, args: argparse.Namespace) -> dict[str, list[float]]:
    url, replica = primary.url("bench"), standby.url()
    fill(url, args.events)
    standby.wait_for_replay(primary)
    runs: dict[str, Callable[[], float]] = {
        "read_all, primary": lambda: timed(lambda: read_all(url, [])),
        "read_all, replica": lambda: timed(lambda: read_all(url, [replica])),
        "loads, primary": lambda: timed(lambda: loads(url, [])),
        "loads, replica": lambda: timed(lambda: loads(url, [replica])),
        "read_all x2, primary+primary": lambda: two_readers(url, replica, ("primary", "primary")),
        "read_all x2, replica+replica": lambda: two_readers(url, replica, ("replica", "replica")),
        "read_all x2, primary+replica": lambda: two_readers(url, replica, ("primary", "replica")),
        "append W1, no replicas": lambda: timed(lambda: appends(url, [], args.appends)),
        "append W1, replicas=": lambda: timed(lambda: appends(url, [replica], args.appends)),
        "append W1, replicas= commit_lsn=False": lambda: timed(
            lambda: appends(url, [replica], args.appends, commit_lsn=False)
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(runs[name]())
            print(f"round {round_ + 1}: {name}: {results[name][-1]:,.0f}/s", file=sys.stderr)
    return results


def print_table(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    median = {name: statistics.median(values) for name, values in results.items()}
    pairs = [
        ("read_all (events/s)", "read_all, primary", "read_all, replica"),
        ("loads (loads/s)", "loads, primary", "loads, replica"),
        ("2 readers at once (events/s)", "read_all x2, primary+primary", None),
        ("", "read_all x2, replica+replica", None),
        ("", "read_all x2, primary+replica", None),
        ("append W1 (appends/s)", "append W1, no replicas", "append W1, replicas="),
        ("", "append W1, no replicas", "append W1, replicas= commit_lsn=False"),
    ]
    durable = "durable servers" if args.durable else "test servers (no fsync)"
    print(f"**Reads from a replica against the primary** ({args.events:,} events, {durable}, ")
    print(f"median of {args.rounds} rounds, 2 cores shared by both servers and the readers)\n")
    print("| measure | baseline | /s | compared | /s | ratio |")
    print("|---|---|---:|---|---:|---:|")
    base_x2 = median["read_all x2, primary+primary"]
    for label, base, other in pairs:
        if other is None:
            ratio = median[base] / base_x2
            print(f"| {label} | {base} | {median[base]:,.0f} | | | {ratio:.2f} |")
            continue
        ratio = median[other] / median[base]
        print(
            f"| {label} | {base} | {median[base]:,.0f} | {other} | {median[other]:,.0f} "
            f"| {ratio:.2f} |"
        )
    print(
        "\nratio: compared / baseline (2 readers: against both on the primary). One reader is "
        "bound by Python (decoding), not by the server; two readers and two servers already "
        "want more than the 2 cores, so reading both servers at once cannot beat reading one "
        "here. W1 with replicas= pays one more round trip per append (the commit's WAL position); "
        "commit_lsn=False does not."
    )


if __name__ == "__main__":
    main()
