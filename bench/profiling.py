"""Where facta's time goes in one case: a cProfile run, summed into database, codec and Python.

    python bench/profiling.py W3-10000 facta-sqlite
    python bench/profiling.py W1 facta-postgres --top 30

Own time (``tottime``) of every function is put into one bucket by where the function lives;
the shares are of the profiled time. cProfile slows Python calls more than C calls, so the
Python share comes out somewhat higher than in an unprofiled run (both times are printed).
For async stores, time the event loop spends waiting (on the server, or on a worker thread
for SQLite) shows as "waiting".
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.model import QUICK, Sizes, cases
from bench.worker import Worker, make_system

BUCKETS = [  # (bucket, markers in "file:function"), first match wins
    ("waiting (I/O, threads)", ("select.epoll", "selectors.py", "lock' objects", "threading.py")),
    # sqlite3 steps its cursor inside the comprehension that converts the rows
    ("database driver", ("psycopg", "sqlite3.", "_sqlite3", "backends/sqlite.py:<listcomp>")),
    ("codec (msgspec, facta codec)", ("msgspec", "facta/codec.py", "facta/snapshots.py")),
    ("facta Python", ("facta/",)),
    ("aggregate and benchmark code", ("bench/",)),
    ("asyncio", ("asyncio/",)),
    ("stdlib (uuid, datetime, ...)", ("python3.11/", "built-in", "<method", "<built-in")),
]


def bucket(filename: str, function: str) -> str:
    where = f"{filename}:{function}"
    for name, markers in BUCKETS:
        if any(marker in where for marker in markers):
            return name
    return "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", help="a case id, e.g. W1, W2, W3-10000, W5")
    parser.add_argument("system", help="a system name, e.g. facta-sqlite")
    parser.add_argument("--quick", action="store_true", help="the --quick sizes")
    parser.add_argument("--top", type=int, default=15, help="how many functions to list")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    case = next((c for c in cases(sizes) if c.id == args.case), None)
    if case is None:
        parser.error(f"unknown case {args.case!r}")
    worker = Worker(make_system(args.system, sizes, "facta_bench_profile"))
    try:
        status = worker.call(worker.system.setup(case.group))
        if status.get(case.id):
            print(f"{args.system} cannot run {case.id}: {status[case.id]}")
            return 1
        worker.call(worker.system.prepare(case.id))  # one unprofiled trial, for comparison
        gc.collect()
        start = time.perf_counter()
        count = worker.call(worker.system.run(case.id))
        plain = time.perf_counter() - start
        worker.call(worker.system.prepare(case.id))
        gc.collect()
        profiler = cProfile.Profile()
        profiler.enable()
        worker.call(worker.system.run(case.id))
        profiler.disable()
    finally:
        worker.handle({"op": "close"})
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    for (filename, _, function), (_, _, own, _, _) in raw.items():
        name = bucket(filename, function)
        totals[name] = totals.get(name, 0.0) + own
    profiled = sum(totals.values())
    print(f"{args.system} {case.id}: {count} units in {plain * 1000:.1f} ms unprofiled,")
    print(f"  {profiled * 1000:.1f} ms profiled; own time by bucket:")
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {seconds / profiled:6.1%}  {seconds * 1000:9.1f} ms  {name}")
    print()
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
