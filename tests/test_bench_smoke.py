"""The benchmark suite still runs: ``python bench/run.py --quick`` on every system, and
``python bench/relay.py`` at a tiny size.

It asserts nothing about speed (speed lives in bench/ and docs/benchmarks.md), only that every
workload ran on every system that can run it, PostgreSQL included.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_bench(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a benchmark command from the repository's root; it must exit 0."""
    finished = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert finished.returncode == 0, finished.stderr[-4000:]
    return finished


@pytest.mark.postgres
def test_quick_benchmark_run_exits_cleanly_and_prints_the_ratio_table(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    finished = run_bench(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out)]
    )
    assert "**Ratios**" in finished.stdout
    assert "| raw-psycopg " in finished.stdout
    results = json.loads(out.read_text())["results"]
    failed = [(r["system"], r["case"]) for r in results if r["status"].startswith("error")]
    assert failed == []
    measured = {r["system"] for r in results if r["median"] is not None}
    assert {
        "facta-sqlite",
        "raw-sqlite3",
        "raw-psycopg",
        "raw-psycopg-async",
        "raw-asyncpg",
    } <= measured


def test_a_small_relay_benchmark_run_exits_cleanly_and_prints_its_tables(tmp_path: Path) -> None:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=2).close()
    except OSError as e:
        pytest.skip(f"no NATS server at 127.0.0.1:4222 ({e}); test.sh starts one")
    out = tmp_path / "relay.json"
    command = [sys.executable, str(ROOT / "bench" / "relay.py"), "--events", "200", "--rounds", "1"]
    command += ["--brokers", "nats", "--backends", "sqlite", "--samples", "50", "--json", str(out)]
    finished = run_bench(command)
    assert "**Relay throughput, 200 events**" in finished.stdout
    assert re.search(r"^\| nats +\| sqlite +\| +[\d,]+ \|", finished.stdout, re.MULTILINE)
    assert "**Append committed -> subscriber sees it**" in finished.stdout
    document = json.loads(out.read_text())
    (relay,) = document["relay"]
    assert relay["error"] is None
    assert relay["ratio"] is not None
    assert [row["backend"] for row in document["latency"]] == ["memory", "sqlite"]
    assert all(row["samples"] == 50 for row in document["latency"])


@pytest.mark.postgres
def test_a_smoke_run_of_the_replica_benchmark_prints_its_ratio_table() -> None:
    finished = run_bench([sys.executable, str(ROOT / "bench" / "replicas.py"), "--smoke"])
    assert "**Reads from a replica against the primary**" in finished.stdout
    assert re.search(r"^\| read_all \(events/s\) \| read_all, primary \|", finished.stdout, re.M)
    assert "| append W1 (appends/s) |" in finished.stdout


@pytest.mark.postgres
def test_a_small_partitions_benchmark_run_exits_cleanly_and_prints_its_table() -> None:
    finished = run_bench([sys.executable, str(ROOT / "bench" / "partitions.py"), "--smoke"])
    assert "| setup | servers | events/s | ratio | cores busy |" in finished.stdout
    assert "server CPU/event" in finished.stdout
    for setup in ("postgres", "partitioned x1", "partitioned x3"):
        assert re.search(rf"^\| {setup} \| [13] \| +[\d,]+ \| [\d.]+ \|", finished.stdout, re.M)


@pytest.mark.postgres
def test_a_smoke_run_of_the_workers_benchmark_prints_its_table() -> None:
    finished = run_bench([sys.executable, str(ROOT / "bench" / "workers.py"), "--smoke"])
    assert "**Sliced projection workers, 600 events" in finished.stdout
    for workers in (1, 2, 3):
        assert re.search(rf"^\| {workers} \| +[\d,]+ \| [\d.]+x \|", finished.stdout, re.MULTILINE)


@pytest.mark.postgres
def test_the_append_cost_profile_runs_and_prints_every_variant() -> None:
    finished = run_bench(
        [
            sys.executable,
            str(ROOT / "bench" / "append_cost.py"),
            "--appends",
            "20",
            "--rounds",
            "1",
        ]
    )
    assert "| raw INSERT (facta's table) |" in finished.stdout
    assert "| facta's statement |" in finished.stdout
    assert "| store.append (facta's Python too) |" in finished.stdout
    assert "| repository.save (W1's work) |" in finished.stdout
    assert "| client CPU µs | server CPU µs | waiting µs |" in finished.stdout


@pytest.mark.postgres
def test_a_smoke_growth_benchmark_fills_measures_and_prints_its_tables(tmp_path: Path) -> None:
    from facta.testing.clusters import ClustersUnavailable, server_binaries

    try:
        server_binaries()
    except ClustersUnavailable as e:
        pytest.skip(str(e))
    out = tmp_path / "growth.json"
    command = [sys.executable, str(ROOT / "bench" / "growth.py"), "--smoke", "--json", str(out)]
    finished = run_bench(command)
    assert "**Growth**" in finished.stdout
    assert re.search(r"^\| 2,000 \| [\d,]+ ev/s \(", finished.stdout, re.MULTILINE)
    assert "**Storage**" in finished.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [row["size"] for row in rows] == [0, 2000]
    assert rows[1]["grown"]["added"] == 2000
    assert all(v > 0 for row in rows for f in row["figures"].values() for v in f.values())
    assert rows[1]["pages"]["load 100"] > 0
