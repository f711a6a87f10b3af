"""Summaries of the trials: per-case tables, the ratio table against the goals, the machine."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import sqlite3
import statistics
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

from bench.model import POSTGRES_URL, Case


class Result(NamedTuple):
    """One system's figures for one case: ``values`` per trial, in the case's unit."""

    case: Case
    system: str
    status: str  # "" when measured, else "n/a: why" or "error: what"
    values: list[float]
    rss_mb: float

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def as_dict(self) -> dict[str, Any]:
        measured = bool(self.values) and not self.status
        return {
            "case": self.case.id,
            "title": self.case.title,
            "unit": self.case.unit,
            "system": self.system,
            "status": self.status,
            "values": self.values,
            "median": self.median if measured else None,
            "min": min(self.values) if measured else None,
            "max": max(self.values) if measured else None,
            "peak_rss_mb": round(self.rss_mb, 1) if measured else None,
        }


# (backend, facta system, eventsourcing system, raw driver system) compared in the ratio table
PAIRS: list[tuple[str, str, str | None, str | None]] = [
    ("memory", "facta-memory", "es-popo", None),
    ("memory async", "facta-memory-async", "es-popo", None),
    ("sqlite", "facta-sqlite", "es-sqlite", "raw-sqlite3"),
    ("sqlite async", "facta-sqlite-async", "es-sqlite", "raw-sqlite3"),
    ("sqlite NORMAL", "facta-sqlite-normal", None, "raw-sqlite3-normal"),
    ("postgres", "facta-postgres", "es-postgres", "raw-psycopg"),
    ("postgres async", "facta-postgres-async", "es-postgres", "raw-psycopg-async"),
    # the same facta figures against asyncpg: shown beside psycopg, no goal is measured on it
    ("postgres async vs asyncpg", "facta-postgres-async", None, "raw-asyncpg"),
]

# The first benchmark issue's goals: facta's speed-up over eventsourcing. The goals against
# the physical limit are GOALS below.
ES_GOALS = {"W1": 3.0, "W2": 3.0, "W3": 8.0, "W5": 2.0}


def percentile(samples: list[float], p: float) -> float:
    """The ``p``-th percentile of ``samples`` (nearest rank: a value that was measured)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Goal(NamedTuple):
    """One goal: ``system``'s figure in ``case`` against ``baseline``'s in the same run.

    ``kind``: ``speed`` (facta's speed as a share of the baseline's, at least ``bound``),
    ``time`` (facta's time as a multiple of the baseline's, at most ``bound``) or ``ms``
    (facta's own figure in ms, at most ``bound``; no baseline).
    """

    label: str
    case: str
    system: str
    baseline: str | None
    kind: str
    bound: float


def goals(case_ids: list[str], w3: tuple[int, ...]) -> list[Goal]:
    """The goals of the performance issue (14), for the cases of this run."""
    found: list[Goal] = []
    for a in ("", "-async"):
        pg, raw = f"facta-postgres{a}", f"raw-psycopg{a}"
        found += [
            Goal("W1 PostgreSQL vs INSERT (facta's table)", "W1", pg, raw, "speed", 0.9),
            Goal("W1 PostgreSQL vs INSERT (bare table)", "W1", pg, f"{raw}-bare", "speed", 0.75),
        ]
    for n in w3[-2:]:
        for system, raw in (
            ("facta-postgres", "raw-psycopg"),
            ("facta-postgres-async", "raw-psycopg-async"),
            ("facta-sqlite", "raw-sqlite3"),
            ("facta-sqlite-async", "raw-sqlite3"),
        ):
            label = f"W3 {n:,} vs fetch + decode"
            found.append(Goal(label, f"W3-{n}", system, raw, "time", 1.2))
    for system, bound in (
        ("facta-postgres", 1.0),
        ("facta-postgres-async", 1.0),
        ("facta-sqlite", 0.1),
        ("facta-sqlite-async", 0.1),
    ):
        found.append(Goal("W4 1M via snapshot at head", "W4-1M-head", system, None, "ms", bound))
    for system in ("facta-postgres", "facta-postgres-async"):
        found.append(Goal("W4 1M, head anywhere: p99", "W4-1M-any", system, None, "ms", 2.0))
    for system, raw in (
        ("facta-postgres", "raw-psycopg"),
        ("facta-postgres-async", "raw-psycopg-async"),
        ("facta-sqlite", "raw-sqlite3"),
        ("facta-sqlite-async", "raw-sqlite3"),
    ):
        found.append(Goal("W5 read_all vs fetch + decode", "W5", system, raw, "time", 1.5))
    for system, raw in (
        ("facta-postgres", "raw-psycopg"),
        ("facta-postgres-async", "raw-psycopg-async"),
    ):
        found.append(Goal("W6 projection vs raw", "W6", system, raw, "speed", 0.7))
    for system in ("facta-sqlite", "facta-sqlite-async"):
        found.append(Goal("W7 4 writers vs sqlite3", "W7", system, "raw-sqlite3", "speed", 0.7))
    for case in ("W1", *(f"W3-{n}" for n in w3), "W4-head", "W4-99"):
        found.append(
            Goal("SQLite async vs sync", case, "facta-sqlite-async", "facta-sqlite", "speed", 0.8)
        )
    for case in case_ids:
        for a in ("", "-async"):
            found.append(
                Goal(
                    "memory vs 0.1", case, f"facta-memory{a}", f"facta-memory-0.1{a}", "speed", 1.0
                )
            )
    if w3:  # 238 ms in 0.1's time, 428 ms in the run that found it slower: 250 of those 428
        for a in ("", "-async"):
            found.append(
                Goal(
                    "memory W3 longest vs 0.1 (250 of 428 ms)",
                    f"W3-{w3[-1]}",
                    f"facta-memory{a}",
                    f"facta-memory-0.1{a}",
                    "time",
                    round(250 / 428, 3),
                )
            )
    return [g for g in found if g.case in case_ids]


def goal_rows(results: list[Result]) -> list[dict[str, Any]]:
    """Each goal whose figures this run measured: the ratio and whether it was met."""
    by_key = {(r.case.id, r.system): r for r in results if r.values and not r.status}
    case_ids = list(dict.fromkeys(r.case.id for r in results))
    w3 = tuple(int(c[3:]) for c in case_ids if c.startswith("W3-"))
    rows = []
    for goal in goals(case_ids, w3):
        mine = by_key.get((goal.case, goal.system))
        base = by_key.get((goal.case, goal.baseline)) if goal.baseline else None
        if mine is None or (goal.baseline and base is None):
            continue
        if base is None:
            value = mine.median
        else:
            ms = mine.case.unit == "ms"
            speed = base.median / mine.median if ms else mine.median / base.median
            value = speed if goal.kind == "speed" else 1 / speed
        met = value >= goal.bound if goal.kind == "speed" else value <= goal.bound
        rows.append({**goal._asdict(), "value": value, "met": met})
    return rows


def goal_table(rows: list[dict[str, Any]]) -> list[str]:
    """The goals as met or MISSED: 'speed' is a share of the baseline's speed (at least the
    bound), 'time' a multiple of its time (at most), 'ms' facta's own time (at most)."""
    lines = []
    for row in rows:
        kind = row["kind"]
        sign = ">=" if kind == "speed" else "<="
        unit = " ms" if kind == "ms" else "x"
        lines.append(
            [
                row["label"],
                row["case"],
                row["system"],
                row["baseline"] or "",
                f"{row['value']:.2f}{unit}",
                f"{sign} {row['bound']:g}{unit}",
                "met" if row["met"] else "MISSED",
            ]
        )
    header = ["goal", "case", "system", "against", "measured", "goal", ""]
    return _table(header, lines, {4})


def _number(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return [line(header), rule, *(line(row) for row in rows)]


def case_tables(results: list[Result]) -> list[str]:
    """One table per case: every system's median, min-max and peak RSS."""
    out: list[str] = []
    for case in dict.fromkeys(r.case for r in results):
        rows = []
        for r in (r for r in results if r.case == case):
            if r.status or not r.values:
                rows.append([r.system, r.status or "no trial", "", ""])
            else:
                low, high = min(r.values), max(r.values)
                spread = f"{_number(low, case.unit)}-{_number(high, case.unit)}"
                rows.append([r.system, _number(r.median, case.unit), spread, f"{r.rss_mb:,.0f}"])
        better = "lower is better" if case.unit == "ms" else "higher is better"
        out += [f"**{case.title}** ({case.unit}, {better})", ""]
        out += _table(["system", f"median {case.unit}", "min-max", "peak RSS MiB"], rows, {1, 2, 3})
        out.append("")
    return out


def ratios(results: list[Result]) -> list[dict[str, Any]]:
    """facta against eventsourcing and against the raw driver, per case and backend."""
    by_key = {(r.case.id, r.system): r for r in results if r.values and not r.status}
    found = []
    for case in dict.fromkeys(r.case for r in results):
        for backend, facta, es, raw in PAIRS:
            mine = by_key.get((case.id, facta))
            if mine is None:
                continue
            row: dict[str, Any] = {"case": case.id, "unit": case.unit, "backend": backend}
            row["facta"] = mine.median
            other = by_key.get((case.id, es)) if es else None
            row["eventsourcing"] = other.median if other else None
            row["vs_es"] = None
            if other:
                row["vs_es"] = (
                    other.median / mine.median if case.unit == "ms" else mine.median / other.median
                )
            base = by_key.get((case.id, raw)) if raw else None
            row["raw"] = base.median if base else None
            row["vs_raw"] = mine.median / base.median if base else None
            group = case.id.split("-")[0] if case.id.startswith("W3") else case.id
            row["es_goal"] = ES_GOALS.get(group)
            found.append(row)
    return found


def _verdict(value: float | None, goal: float | None, at_most: bool) -> str:
    if value is None or goal is None:
        return ""
    met = value <= goal if at_most else value >= goal
    return "met" if met else "MISSED"


def ratio_table(rows: list[dict[str, Any]]) -> list[str]:
    """The ratio table: 'x es' is facta's speed-up; 'vs raw' is throughput share or time ratio."""
    lines = []
    for row in rows:
        unit = row["unit"]
        es_goal = None if row["vs_es"] is None else row["es_goal"]
        lines.append(
            [
                row["case"],
                row["backend"],
                _number(row["facta"], unit),
                "" if row["eventsourcing"] is None else _number(row["eventsourcing"], unit),
                "" if row["raw"] is None else _number(row["raw"], unit),
                "" if row["vs_es"] is None else f"{row['vs_es']:.1f}x",
                ""
                if es_goal is None
                else f">= {es_goal:g}x {_verdict(row['vs_es'], es_goal, False)}",
                "" if row["vs_raw"] is None else f"{row['vs_raw']:.2f}",
            ]
        )
    header = ["case", "backend", "facta", "eventsourcing", "raw", "x es", "goal", "vs raw"]
    return _table(header, lines, {2, 3, 4, 5, 7})


def machine() -> dict[str, Any]:
    """What the run ran on: CPU, cores, memory, and every relevant version."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    versions: dict[str, str] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    for package in ("eventsourcing", "psycopg", "psycopg-binary", "asyncpg", "msgspec"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    from bench.previous import GIT  # the checkout, also when the suite runs from a copy

    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=GIT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    versions["facta"] = f"{importlib.metadata.version('facta')} ({commit})"
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            versions["postgresql"] = str(row[0]) if row else "unknown"
    except Exception as e:  # a summary line, not a failure: the PostgreSQL systems report their own
        versions["postgresql"] = f"unreachable ({type(e).__name__})"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "platform": platform.platform(),
        "versions": versions,
    }
