"""Charts of a benchmark run: one SVG per case, from the run's JSON, with no plotting library.

    python bench/plots.py bench/results/20261127-140000.json docs/benchmarks
    python bench/plots.py RESULTS.json FOLDER --cases W1,W3-10000

Each chart has a bar per system (its median, a whisker from its min to its max), coloured by
library (facta, facta's previous release or another commit, eventsourcing, the raw drivers), and on each facta bar
that has a goal in the run a mark where the goal lies (e.g. 0.9 of the raw INSERT's speed, or
1.2 times the raw fetch and decode's time), green when met and red when missed. Scales are
logarithmic when the figures span more than a factor of 50 (eventsourcing beside the raw
drivers often does). ``bench/run.py`` writes the charts of every run beside its JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from html import escape
from pathlib import Path
from typing import Any

COLOURS = {
    "facta": "#2f6fba",
    "facta (0.1, other commit)": "#8fb3de",
    "eventsourcing": "#d08a2e",
    "raw": "#6b6b6b",
}
MET, MISSED = "#1e8c3a", "#c62828"
WIDTH, LEFT, RIGHT, ROW, TOP, BOTTOM = 760, 210, 40, 22, 56, 46


def library(system: str) -> str:
    name = system.partition("@")[0]
    if name.endswith(("-0.1", "-0.1-async")) or "@" in system:
        return "facta (0.1, other commit)"
    if name.startswith("facta"):
        return "facta"
    if name.startswith("es-"):
        return "eventsourcing"
    return "raw"


def _goal_marks(document: dict[str, Any], case: str) -> dict[str, tuple[float, bool, str]]:
    """Where each facta system's goal lies in ``case``, in the case's unit: value, met, label."""
    medians = {(r["case"], r["system"]): r["median"] for r in document["results"]}
    marks: dict[str, tuple[float, bool, str]] = {}
    for goal in document.get("goals", []):
        if goal["case"] != case or goal["system"] in marks:
            continue
        base = medians.get((case, goal["baseline"])) if goal["baseline"] else None
        unit = next(r["unit"] for r in document["results"] if r["case"] == case)
        if goal["kind"] == "ms":
            at, label = goal["bound"], f"<= {goal['bound']:g} ms"
        elif base is None:
            continue
        elif goal["kind"] == "speed":  # at least bound x the baseline's speed
            at = base * goal["bound"] if unit != "ms" else base / goal["bound"]
            label = f">= {goal['bound']:g}x {goal['baseline']}"
        else:  # time: at most bound x the baseline's time
            at = base * goal["bound"] if unit == "ms" else base / goal["bound"]
            label = f"<= {goal['bound']:g}x {goal['baseline']}'s time"
        marks[goal["system"]] = (at, bool(goal["met"]), label)
    return marks


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def chart(document: dict[str, Any], case: str) -> str | None:
    """The SVG of one case, or None when no system measured it."""
    rows = [r for r in document["results"] if r["case"] == case and r["median"] is not None]
    if not rows:
        return None
    unit, title = rows[0]["unit"], rows[0]["title"]
    marks = _goal_marks(document, case)
    values = [v for r in rows for v in (r["min"], r["max"])] + [m[0] for m in marks.values()]
    high, low = max(values), min(v for v in values if v > 0)
    logarithmic = high / low > 50
    plot = WIDTH - LEFT - RIGHT
    floor: float = 10 ** math.floor(math.log10(low)) if logarithmic else 0.0
    ceiling: float = 10 ** math.ceil(math.log10(high)) if logarithmic else high * 1.08

    def x(value: float) -> float:
        if logarithmic:
            span = math.log10(ceiling) - math.log10(floor)
            return LEFT + plot * (math.log10(max(value, floor)) - math.log10(floor)) / span
        return LEFT + plot * value / ceiling

    lines = textwrap.wrap(title, 78)
    top = TOP + 18 * (len(lines) - 1)
    height = top + ROW * len(rows) + BOTTOM
    better = "lower is better" if unit == "ms" else "higher is better"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        *(
            f'<text x="20" y="{18 + 18 * i}" font-size="14" font-weight="bold">'
            f"{escape(line)}</text>"
            for i, line in enumerate(lines)
        ),
        f'<text x="20" y="{top - 20}" fill="#555">median {escape(unit)} ({better}), min-max '
        f"whiskers{'; log scale' if logarithmic else ''}; marks: goals</text>",
    ]
    if logarithmic:
        ticks = [floor * 10**i for i in range(round(math.log10(ceiling / floor)) + 1)]
    else:  # steps of 1, 2 or 5 times a power of ten, four or so of them
        power = 10 ** math.floor(math.log10(ceiling / 4))
        step = next(power * k for k in (1, 2, 5, 10) if power * k >= ceiling / 5)
        ticks = [step * i for i in range(int(ceiling / step) + 1)]
    bottom = top + ROW * len(rows)
    for tick in ticks:
        out.append(
            f'<line x1="{x(tick):.1f}" y1="{top - 4}" x2="{x(tick):.1f}" y2="{bottom}" '
            'stroke="#e3e3e3"/>'
        )
        out.append(
            f'<text x="{x(tick):.1f}" y="{bottom + 16}" text-anchor="middle" fill="#555">'
            f"{_number(tick)}</text>"
        )
    for index, row in enumerate(rows):
        y = top + ROW * index
        colour = COLOURS[library(row["system"])]
        out.append(
            f'<text x="{LEFT - 8}" y="{y + 15}" text-anchor="end">{escape(row["system"])}</text>'
        )
        start = x(floor) if logarithmic else LEFT
        out.append(
            f'<rect x="{start:.1f}" y="{y + 4}" width="{max(x(row["median"]) - start, 1):.1f}" '
            f'height="{ROW - 8}" fill="{colour}"/>'
        )
        middle = y + ROW / 2
        out.append(
            f'<line x1="{x(row["min"]):.1f}" y1="{middle}" x2="{x(row["max"]):.1f}" '
            f'y2="{middle}" stroke="black" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{x(row["max"]) + 4:.1f}" y="{y + 15}" fill="#333">'
            f"{_number(row['median'])}</text>"
        )
        mark = marks.get(row["system"])
        if mark is not None:
            at, met, label = mark
            out.append(
                f'<line x1="{x(at):.1f}" y1="{y + 1}" x2="{x(at):.1f}" y2="{y + ROW - 1}" '
                f'stroke="{MET if met else MISSED}" stroke-width="3">'
                f"<title>goal {escape(label)}: {'met' if met else 'missed'}</title></line>"
            )
    legend_y = bottom + 34
    position = 20
    for name, colour in COLOURS.items():
        out.append(
            f'<rect x="{position}" y="{legend_y - 10}" width="10" height="10" fill="{colour}"/>'
        )
        out.append(f'<text x="{position + 14}" y="{legend_y}">{escape(name)}</text>')
        position += 24 + 7 * len(name)
    for name, colour in (("goal met", MET), ("goal missed", MISSED)):
        out.append(
            f'<line x1="{position}" y1="{legend_y - 11}" x2="{position}" y2="{legend_y + 1}" '
            f'stroke="{colour}" stroke-width="3"/>'
        )
        out.append(f'<text x="{position + 6}" y="{legend_y}">{name}</text>')
        position += 90
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(document: dict[str, Any], folder: Path, cases: list[str] | None = None) -> list[Path]:
    """Write a chart per case of the run into ``folder``; the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for case in dict.fromkeys(r["case"] for r in document["results"]):
        if cases and case not in cases:
            continue
        svg = chart(document, case)
        if svg is not None:
            path = folder / f"{case}.svg"
            path.write_text(svg)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("results", type=Path, help="a run's JSON (bench/results/...)")
    parser.add_argument("folder", type=Path, help="where to write the SVG files")
    parser.add_argument("--cases", help="comma-separated case ids (default: every case)")
    args = parser.parse_args(argv)
    document = json.loads(args.results.read_text())
    cases = [c.strip() for c in args.cases.split(",")] if args.cases else None
    for path in write(document, args.folder, cases):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
