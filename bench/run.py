"""Run the benchmark suite: every workload on every system, interleaved, then a table.

    python bench/run.py                    # the full run (about fifteen minutes on two cores)
    python bench/run.py --quick            # a smoke run: tiny sizes, one repeat
    python bench/run.py --only W1,W3 --systems facta-sqlite,es-sqlite,raw-sqlite3 --repeats 7

Each system runs each workload group in a process of its own, so that peak memory, imports
and connections do not leak between them. Within a group, trials go round the systems in
turn (the order rotates every repeat), so that machine drift hits every system alike.
Results are printed as Markdown tables and written as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import plots, previous, report
from bench.model import POSTGRES_URL, QUICK, SYSTEMS, Case, Sizes, cases

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    """A worker process for one system and one workload group."""

    def __init__(self, system: str, sizes: Sizes, schema: str) -> None:
        self.system = system
        argv = [sys.executable, str(ROOT / "bench" / "worker.py"), system]
        argv += [json.dumps(sizes.as_dict()), schema]
        folder, env = ROOT, dict(os.environ)
        if previous.split(system)[1] is not None:  # another commit: its own worker and source
            argv, folder, extra = previous.command(sys.executable, system, sizes.as_dict(), schema)
            env.update(extra)
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=folder,
            env=env,
        )

    def send(self, **command: Any) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()

    def receive(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            return {"error": f"worker exited with code {self.process.wait()}"}
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, **command: Any) -> dict[str, Any]:
        self.send(**command)
        return self.receive()

    def close(self) -> None:
        if self.process.poll() is None:
            self.ask(op="close")
        self.process.wait(timeout=120)


_STARTED = time.monotonic()


def library(system: str) -> str:
    name = system.partition("@")[0]
    return next(s.library for s in SYSTEMS if s.name == name)


def _say(message: str) -> None:
    minutes, seconds = divmod(int(time.monotonic() - _STARTED), 60)
    print(f"[{minutes:2d}:{seconds:02d}] {message}", file=sys.stderr, flush=True)


def run_group(
    group: str, group_cases: list[Case], systems: list[str], sizes: Sizes, repeats: int, prefix: str
) -> list[report.Result]:
    workers = [Worker(s, sizes, f"{prefix}_{_schema(s)}_{group.lower()}") for s in systems]
    status: dict[tuple[str, str], str] = {}
    values: dict[tuple[str, str], list[float]] = {}
    rss: dict[tuple[str, str], float] = {}
    try:
        for worker in workers:  # set up in parallel: untimed, and the slowest part of a run
            worker.send(op="setup", group=group)
        for worker in workers:
            reply = worker.receive()
            _say(f"{group}: {worker.system} is set up")
            for case in group_cases:
                key = (case.id, worker.system)
                values[key], rss[key] = [], 0.0
                if "error" in reply:
                    status[key] = "error: setup failed"
                    _say(f"{worker.system} {group} setup failed:\n{reply['error']}")
                elif "unavailable" in reply:
                    status[key] = f"n/a: {reply['unavailable']}"
                elif case.facta_only and library(worker.system) != "facta":
                    status[key] = "n/a: a goal of facta's own, with no baseline"
                elif library(worker.system) == "facta-0.1" and not previous.knows(case.id):
                    status[key] = "n/a: not in the previous release's benchmark"
                else:
                    found = reply["status"].get(case.id, "")
                    status[key] = f"n/a: {found}" if found else ""
        for repeat in range(repeats):
            turn = workers[repeat % len(workers) :] + workers[: repeat % len(workers)]
            for case in group_cases:
                for worker in turn:
                    key = (case.id, worker.system)
                    if status[key]:
                        continue
                    reply = worker.ask(op="trial", case=case.id)
                    if "error" in reply:
                        status[key] = "error: trial failed"
                        _say(f"{worker.system} {case.id} failed:\n{reply['error']}")
                        continue
                    if case.p99:
                        value = report.percentile(reply["samples"], 99) * 1000
                    else:
                        seconds, count = reply["seconds"], reply["count"]
                        value = seconds * 1000 / count if case.unit == "ms" else count / seconds
                    values[key].append(value)
                    rss[key] = max(rss[key], reply["rss_mb"])
                    _say(
                        f"  {case.id:8} {repeat + 1}/{repeats} {worker.system:22} {value:12,.2f} {case.unit}"
                    )
    finally:
        for worker in workers:
            try:
                worker.close()
            except Exception as e:  # report, and still close the others
                _say(f"{worker.system}: could not close its worker: {e}")
                worker.process.kill()
    return [
        report.Result(case, s, status[(case.id, s)], values[(case.id, s)], rss[(case.id, s)])
        for case in group_cases
        for s in systems
    ]


def _schema(system: str) -> str:
    """A schema name for a system's worker (``@`` and ``-`` cannot be in it unquoted)."""
    return system.replace("-", "_").replace("@", "_at_").replace("~", "_").replace("^", "_")


def drop_schemas(prefix: str) -> None:
    """Drop every schema this run made, even those of workers that died."""
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",)
        ).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 1 repeat: a smoke run")
    parser.add_argument(
        "--repeats", type=int, help="trials per case and system (default 5; --quick: 1)"
    )
    parser.add_argument("--only", help="comma-separated workloads or cases, e.g. W1,W3 or W3-10000")
    parser.add_argument(
        "--systems", help="comma-separated systems or prefixes, e.g. facta,raw-sqlite3"
    )
    parser.add_argument(
        "--json", type=Path, help="where to write the results (default bench/results/)"
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def select(names: str | None, available: list[str], what: str) -> list[str]:
    if not names:
        return available
    chosen: set[str] = set()
    extra = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if "@" in name and what == "system":  # another commit's code: NAME@COMMIT
            if name.partition("@")[0] not in available:
                raise SystemExit(f"unknown system {name!r}; choose from {', '.join(available)}")
            extra.append(name)
            continue
        # an exact name picks itself; a prefix ("facta", "W3") picks every name under it
        found = [name] if name in available else [a for a in available if a.startswith(name + "-")]
        if not found:
            raise SystemExit(f"unknown {what} {name!r}; choose from {', '.join(available)}")
        chosen.update(found)
    return [a for a in available if a in chosen] + extra


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    repeats = args.repeats or (1 if args.quick else 5)
    all_cases = cases(sizes)
    groups = list(dict.fromkeys(c.group for c in all_cases))
    wanted = select(args.only, groups + [c.id for c in all_cases], "workload")
    chosen = [c for c in all_cases if c.group in wanted or c.id in wanted]
    systems = select(args.systems, [s.name for s in SYSTEMS], "system")
    prefix = f"facta_bench_{os.getpid()}"
    started = time.time()
    _say(f"benchmarks: {len(chosen)} cases x {len(systems)} systems, {repeats} repeats")
    results: list[report.Result] = []
    try:
        for group in dict.fromkeys(c.group for c in chosen):
            group_cases = [c for c in chosen if c.group == group]
            _say(f"{group}: setting up {len(systems)} systems")
            results += run_group(group, group_cases, systems, sizes, repeats, prefix)
    finally:
        if any("postgres" in s or "psycopg" in s or "asyncpg" in s for s in systems):
            try:
                drop_schemas(prefix)
            except Exception as e:  # unreachable server: the systems have reported it already
                _say(f"could not drop the benchmark schemas: {e}")
    elapsed = time.time() - started
    info = report.machine()
    ratios = report.ratios(results)
    goals = report.goal_rows(results)
    lines = [
        f"facta benchmarks: {repeats} repeats, {'quick' if args.quick else 'full'} sizes, "
        f"{elapsed / 60:.1f} min; {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB",
        "",
        *report.case_tables(results),
        "**Ratios** (x es: facta's speed-up over eventsourcing; vs raw: share of the raw driver's "
        "events/s, or time over the raw driver's time: reads are fetch + typed decode)",
        "",
        *report.ratio_table(ratios),
        "",
        "**Goals** (medians of this run; speed: a share of the baseline's speed, time: a "
        "multiple of its time, ms: facta's own figure)",
        "",
        *report.goal_table(goals),
    ]
    print("\n".join(lines))
    out = args.json or ROOT / "bench" / "results" / time.strftime("%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "command": " ".join(
            ["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "minutes": round(elapsed / 60, 2),
        "repeats": repeats,
        "sizes": sizes.as_dict(),
        "machine": info,
        "results": [r.as_dict() for r in results],
        "ratios": ratios,
        "goals": goals,
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    _say(f"results written to {out}")
    charts = plots.write(document, out.with_suffix(""))
    _say(f"{len(charts)} charts written to {out.with_suffix('')}/")
    failed = [r for r in results if r.status.startswith("error")]
    for r in failed:
        _say(f"FAILED: {r.system} {r.case.id}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
