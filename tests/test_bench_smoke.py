"""The benchmark suite still runs: ``python bench/run.py --quick`` on every system.

It asserts nothing about speed (speed lives in bench/ and docs/benchmarks.md), only that every
workload ran on every system that can run it, PostgreSQL included.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.postgres


def test_quick_benchmark_run_exits_cleanly_and_prints_the_ratio_table(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-4000:]
    assert "**Ratios**" in finished.stdout
    assert "| raw-psycopg " in finished.stdout
    results = json.loads(out.read_text())["results"]
    failed = [(r["system"], r["case"]) for r in results if r["status"].startswith("error")]
    assert failed == []
    measured = {r["system"] for r in results if r["median"] is not None}
    assert {"facta-sqlite", "raw-sqlite3", "raw-psycopg", "raw-psycopg-async"} <= measured
