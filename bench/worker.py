"""A worker process: one system, one workload group, driven by the runner over a pipe.

Commands arrive as JSON lines on stdin; replies go out as JSON lines on the original stdout
(the worker's own prints and library output go to stderr). Each trial reports its time and
the peak resident memory during the trial alone (Linux: ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import inspect
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.model import SYSTEMS, Sizes
from bench.workloads import Unavailable, Workloads


def make_system(name: str, sizes: Sizes, schema: str) -> Workloads:
    """The workloads object for a system name (imports only that system's library)."""
    system = next(s for s in SYSTEMS if s.name == name)
    if system.library == "facta":
        from bench import facta_systems

        return facta_systems.make(sizes, schema, system.backend, system.is_async)
    if system.library == "eventsourcing":
        if importlib.util.find_spec("eventsourcing") is None:
            raise Unavailable("eventsourcing is not installed (pip install --group bench)")
        from bench import es_systems

        return es_systems.make(sizes, schema, system.backend)
    if system.backend == "postgres-asyncpg":
        if importlib.util.find_spec("asyncpg") is None:
            raise Unavailable("asyncpg is not installed (pip install --group bench)")
        from bench import raw_asyncpg

        return raw_asyncpg.RawAsyncpg(sizes, schema)
    from bench import raw_systems

    if system.backend.startswith("sqlite"):
        synchronous = "NORMAL" if system.backend == "sqlite-normal" else "FULL"
        return raw_systems.RawSQLite(sizes, schema, synchronous)
    bare = system.backend == "postgres-bare"
    if system.is_async:
        return raw_systems.RawPsycopgAsync(sizes, schema, bare)
    return raw_systems.RawPsycopg(sizes, schema, bare)


def peak_rss_mb() -> float:
    """The process's peak resident memory since the last reset, in MiB (0 if unknown)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else 0.0


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError):  # not Linux: the peak then covers the whole process
        Path("/proc/self/clear_refs").write_text("5")


class Worker:
    def __init__(self, system: Workloads) -> None:
        self.system = system
        self.loop = asyncio.new_event_loop()

    def call(self, result: Any) -> Any:
        return self.loop.run_until_complete(result) if inspect.isawaitable(result) else result

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command["op"]
        if op == "setup":
            try:
                return {"status": self.call(self.system.setup(command["group"]))}
            except Unavailable as e:
                return {"unavailable": str(e)}
        if op == "trial":
            case = command["case"]
            self.call(self.system.prepare(case))
            gc.collect()
            reset_peak_rss()
            start = time.perf_counter()
            count = self.call(self.system.run(case))
            seconds = time.perf_counter() - start
            if isinstance(count, list):  # a p99 case: each unit's own duration
                return {"seconds": seconds, "samples": count, "rss_mb": peak_rss_mb()}
            return {"seconds": seconds, "count": count, "rss_mb": peak_rss_mb()}
        if op == "close":
            self.call(self.system.close())
            self.loop.close()
            return {}
        raise ValueError(f"unknown command {op!r}")


def main() -> int:
    name, sizes_json, schema = sys.argv[1:4]
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed by the libraries goes to stderr, not into the protocol
    worker: Worker | None = None
    unavailable = ""
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if worker is None and not unavailable:
                sizes = Sizes.from_dict(json.loads(sizes_json))
                worker = Worker(make_system(name, sizes, schema))
            reply = {} if worker is None else worker.handle(command)
        except Unavailable as e:
            unavailable = str(e)
            reply = {"unavailable": unavailable}
        except Exception:
            reply = {"error": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")
        if command["op"] == "close":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
