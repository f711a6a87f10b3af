"""Where a single-event PostgreSQL append's time goes: facta's statement against a raw INSERT.

    python bench/append_cost.py                  # the shared server (bench/model.py's URL)
    python bench/append_cost.py --private        # a private, durable server of its own
    python bench/append_cost.py --appends 200 --rounds 3   # smaller (the smoke test's size)

Every variant is one autocommitted statement per append (one round trip, one commit) into
facta's own tables, interleaved round by round. ``facta`` is the statement the store sends
for a new stream (advisory lock, claim of the stream row, the event's INSERT, ``pg_notify``);
the ``without`` variants take one part out of that statement, to show what the part costs
(they are measurements, not options: without the lock a stream's versions could be written
out of the global log's order, without the claim nothing checks versions). ``store.append``
adds facta's Python around the same statement; ``repository.save`` is W1's whole work (a new
``Cart``, its command, the save). Per variant: the median time per append, its speed as a
share of the raw INSERT's, the CPU time per append of the client (this process) and of the
server (the variant's own backend, read from ``/proc``: the server must be on this machine),
the server's own execution time (``EXPLAIN ANALYZE``: planning, the commit and the round trip
excluded) and the WAL written per append (the smallest over the rounds: other writers of a
shared server add to it, never take from it). What the two CPUs leave of the time is waiting:
the commit's flush to disk and the loopback's hand-overs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

import facta
from bench.facta_systems import Cart
from bench.model import POSTGRES_URL, field_pool
from facta.backends.postgres.queries import Queries

_SCHEMA = f"facta_append_cost_{os.getpid()}"  # its own: several runs may share a server
_RAW = (
    "INSERT INTO {schema}.facta_events (transaction_id, stream_id, version, event_id, type,"
    " schema_version, encoding, data, metadata) VALUES (pg_current_xact_id()::text::bigint,"
    " %(stream)s, 1, %(id)s, %(type)s, %(sv)s, %(enc)s, %(data)b, %(meta)b)"
)
_BARE_TABLE = (
    "CREATE TABLE {schema}.bare (transaction_id bigint NOT NULL, stream_id text NOT NULL,"
    " version bigint NOT NULL, event_id uuid NOT NULL, type text NOT NULL, schema_version"
    " integer NOT NULL, encoding smallint NOT NULL, data bytea NOT NULL, metadata bytea NOT"
    " NULL, recorded_at timestamptz NOT NULL DEFAULT now())"
)
_NOTIFY = re.compile(r",\s*pg_notify\([^)]*\)")
_LOCK = re.compile(r" FROM \(SELECT pg_advisory_xact_lock\(.*?\) AS locked", re.S)
_DATA = json.dumps({"item_id": str(uuid.uuid4()), "name": "item-1", "quantity": 3}).encode()


def _without(pattern: re.Pattern[str], statement: str) -> str:
    changed, count = pattern.subn("", statement)
    assert count == 1, f"{pattern.pattern!r} is not in facta's statement any more"
    return changed


def statements(schema: str) -> dict[str, str]:
    """The variants' statements, rendered for ``schema``."""
    facta_sql = Queries.render(schema).write_one_new
    raw = _RAW.format(schema=f'"{schema}"')
    return {
        "raw INSERT (facta's table)": raw,
        "raw INSERT (bare table)": raw.replace(".facta_events", ".bare"),
        "facta's statement": facta_sql,
        "  without pg_notify": _without(_NOTIFY, facta_sql),
        "  without the advisory lock": _without(_LOCK, facta_sql),
        "  without both": _without(_LOCK, _without(_NOTIFY, facta_sql)),
    }


def params() -> dict[str, Any]:
    """One new stream's single event, as the store sends it."""
    return {
        "stream": str(uuid.uuid4()),
        "n": 1,
        "aggregate": "Cart",
        "id": uuid.uuid4(),
        "type": "bench.ItemAdded",
        "sv": 1,
        "enc": 0,
        "data": _DATA,
        "meta": b"{}",
    }


def _runner(conn: psycopg.Connection[Any], statement: str) -> Callable[[], None]:
    query = statement.encode()

    def run() -> None:
        conn.execute(query, params(), prepare=True)

    return run


def _backend_seconds(pid: int) -> float | None:
    """The CPU time (user + system) the server process ``pid`` has used; None if this
    machine has no such process (a remote server)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wal(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


def measure(url: str, appends: int, rounds: int) -> list[dict[str, Any]]:
    """Every variant's figures on the server at ``url``."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{_SCHEMA}" CASCADE')
    # One pooled connection: its backend is the one whose CPU time the store's variants use.
    store = facta.connect(f"{url}?schema={_SCHEMA}", pool_size=1)
    store.stream_version("made by the first call")  # the store makes its tables
    conn = psycopg.connect(url, autocommit=True)
    pooled = store.recorder.pool.getconn()  # type: ignore[attr-defined]
    try:
        pids = {"conn": conn.info.backend_pid, "store": pooled.info.backend_pid}
    finally:
        store.recorder.pool.putconn(pooled)  # type: ignore[attr-defined]
    try:
        conn.execute(_BARE_TABLE.format(schema=f'"{_SCHEMA}"').encode())
        variants: dict[str, Callable[[], None]] = {}
        for name, statement in statements(_SCHEMA).items():
            variants[name] = _runner(conn, statement)
        event = _Event(3)

        def store_append() -> None:
            store.append(str(uuid.uuid4()), [event], facta.NO_STREAM, aggregate_type="Cart")

        variants["store.append (facta's Python too)"] = store_append
        carts = facta.Repository(store, Cart)
        fields = field_pool(100)

        def repository_save() -> None:
            cart = Cart()
            cart.add_item(fields[len(cart.id) % 100])
            carts.save(cart)

        variants["repository.save (W1's work)"] = repository_save
        for run in variants.values():  # warm up: plans cached, connections open
            for _ in range(20):
                run()
        times: dict[str, list[float]] = {name: [] for name in variants}
        client: dict[str, list[float]] = {name: [] for name in variants}
        server: dict[str, list[float]] = {name: [] for name in variants}
        wal: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                pid = pids["store" if name.startswith(("store", "repository")) else "conn"]
                before, server_before = _wal(conn), _backend_seconds(pid)
                started, cpu = time.perf_counter(), time.process_time()
                for _ in range(appends):
                    variants[name]()
                times[name].append((time.perf_counter() - started) / appends)
                client[name].append((time.process_time() - cpu) / appends)
                server_after = _backend_seconds(pid)
                if server_before is not None and server_after is not None:
                    server[name].append((server_after - server_before) / appends)
                wal[name].append((_wal(conn) - before) / appends)
        explained = {name: _server_ms(conn, s) for name, s in statements(_SCHEMA).items()}
    finally:
        conn.close()
        store.close()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{_SCHEMA}" CASCADE')
    raw = statistics.median(times["raw INSERT (facta's table)"])
    return [
        {
            "variant": name,
            "us_per_append": statistics.median(times[name]) * 1e6,
            "share_of_raw_speed": raw / statistics.median(times[name]),
            "client_cpu_us": statistics.median(client[name]) * 1e6,
            "server_cpu_us": statistics.median(server[name]) * 1e6 if server[name] else None,
            "server_us": explained.get(name),
            "wal_bytes": min(wal[name]),
        }
        for name in names
    ]


@facta.event("bench.append_cost.Added")
@dataclass(frozen=True)
class _Event:
    """A small event for ``store.append``."""

    quantity: int


def _server_ms(conn: psycopg.Connection[Any], statement: str, samples: int = 50) -> float:
    """The server's median execution time of ``statement`` in µs (EXPLAIN ANALYZE)."""
    found = []
    for _ in range(samples):
        explain = "EXPLAIN (ANALYZE, FORMAT JSON) " + statement
        row = conn.execute(explain.encode(), params()).fetchone()
        assert row is not None
        plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
        found.append(float(plan[0]["Execution Time"]) * 1000)
    return statistics.median(found)


@contextlib.contextmanager
def _server(private: bool) -> Iterator[str]:
    if not private:
        yield POSTGRES_URL
        return
    from facta.testing.clusters import private_cluster

    with private_cluster(durable=True) as cluster:
        yield cluster.url()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appends", type=int, default=1000, help="appends per round and variant")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (variants interleaved)")
    parser.add_argument("--private", action="store_true", help="a private durable server")
    args = parser.parse_args(argv)
    with _server(args.private) as url:
        rows = measure(url, args.appends, args.rounds)
    where = "a private durable server" if args.private else "the shared server"
    print(f"**Single-event appends on {where}** ({args.rounds} rounds of {args.appends})")
    print()
    print(
        "| variant | µs per append | share of raw speed | client CPU µs | server CPU µs"
        " | waiting µs | server µs (EXPLAIN) | WAL bytes |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for row in rows:
        server_cpu = row["server_cpu_us"]
        waiting = "" if server_cpu is None else row["us_per_append"] - row["client_cpu_us"]
        cells = [
            row["variant"],
            f"{row['us_per_append']:.0f}",
            f"{row['share_of_raw_speed']:.2f}",
            f"{row['client_cpu_us']:.0f}",
            _number(server_cpu),
            _number(None if server_cpu is None else float(waiting) - server_cpu),
            _number(row["server_us"]),
            f"{row['wal_bytes']:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    return 0


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    sys.exit(main())
