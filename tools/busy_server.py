"""Keep a PostgreSQL server busy as other test-suites do: write transactions of up to 2 s.

CI runs the test-suite while this runs beside it, so every test that reads the global log
must wait for what it reads (an open transaction anywhere holds the log's horizon back).
Each transaction takes a transaction id (it writes a row in a table of its own schema), holds
it for a random 0-2 s, and commits; the next one starts right after. It stops by itself after
``--seconds`` (default 1 hour), or at SIGTERM/SIGINT, and drops its schema.

Usage: python tools/busy_server.py [URL] [--seconds N]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import time

import psycopg

SCHEMA = f"facta_busy_{os.getpid()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=3600.0)
    args = parser.parse_args()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + args.seconds
    rng = random.Random()
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{SCHEMA}".ticks (at timestamptz)')
        try:
            while not stopping and time.monotonic() < deadline:
                with conn.transaction():
                    conn.execute(f'INSERT INTO "{SCHEMA}".ticks VALUES (now())')  # takes an xid
                    held = rng.uniform(0, 2.0)
                    end = time.monotonic() + held
                    while not stopping and time.monotonic() < end:
                        time.sleep(0.05)
        finally:
            conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')


if __name__ == "__main__":
    main()
