"""What personal fields cost: encoding and decoding an event with and without them, and forget.

    python bench/personal.py                     # 20,000 events a round, best of 7 rounds
    python bench/personal.py --events 2000 --rounds 3 --postgres postgresql://host/db

Two event classes with the same seven fields (a customer id, an email, a name, an int, a
datetime, a UUID, a list): in one, email and name are ``Personal`` (the customer id is the
``Subject``). The codec alone (keys at hand: what sealing costs) encodes and decodes each in a
loop, and decodes the personal one once its subject is forgotten; then a memory store appends
and reads them one event per call (keys cached, as in a steady state). Times are microseconds
per event, the best round of each. Then the store-level costs that touch the database: the
first append of a new subject (its data key made and stored) beside an append of a known one,
a read that must fetch its subject's key (cache cold), and ``store.forget`` itself, on SQLite
(``synchronous=FULL``, the default) and, with ``--postgres``, on PostgreSQL (a fresh schema,
dropped afterwards).

Run against a facta without :mod:`facta.personal` (``PYTHONPATH=../main/src``), it measures
the ordinary class only: the codec's speed before personal fields existed.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import facta
from facta.codec import Codec
from facta.events import EventRegistry

try:
    from facta.personal import AesKeyProvider, Personal, Subject, generate_master_key
    from facta.personal.cipher import cipher, new_key
    from facta.personal.data_keys import DataKey, DataKeys
except ImportError:  # a facta from before personal fields: the ordinary class only
    Personal = Subject = None  # type: ignore[assignment,misc]


@dataclasses.dataclass(frozen=True)
class Ordinary:
    customer_id: str
    email: str
    name: str
    amount: int
    at: datetime
    reference: uuid.UUID
    tags: list[str]


@dataclasses.dataclass(frozen=True)
class WithPersonal:
    customer_id: Annotated[str, Subject]
    email: Annotated[str, Personal]
    name: Annotated[str, Personal]
    amount: int
    at: datetime
    reference: uuid.UUID
    tags: list[str]


def _fields(index: int) -> dict[str, Any]:
    return {
        "customer_id": f"customer-{index % 1000}",
        "email": f"person{index}@mail.example",
        "name": f"Forename{index} Lastname{index}",
        "amount": index,
        "at": datetime(2025, 1, 1, 12, 0, index % 60, tzinfo=UTC),
        "reference": uuid.UUID(int=index),
        "tags": ["web", f"batch-{index % 7}"],
    }


def _best(rounds: int, count: int, run: Callable[[], None]) -> float:
    """Microseconds per item of the fastest of ``rounds`` runs over ``count`` items."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, (time.perf_counter() - started) / count)
    return best * 1e6


def codec_costs(count: int, rounds: int) -> dict[str, float]:
    """The codec alone: µs per event to encode and decode, with the keys at hand."""
    registry = EventRegistry()
    registry.register(Ordinary, "bench.Ordinary")
    personal = Personal is not None
    if personal:
        registry.register(WithPersonal, "bench.WithPersonal")
    codec = Codec(registry)
    plain = [Ordinary(**_fields(i)) for i in range(count)]
    stored_plain = [codec.encode("s", e) for e in plain]
    found: dict[str, float] = {}

    def encode_plain() -> None:
        for e in plain:
            codec.encode("s", e)

    def decode_plain() -> None:
        for s in stored_plain:
            codec.decode(*s)

    found["codec encode, ordinary"] = _best(rounds, count, encode_plain)
    found["codec decode, ordinary"] = _best(rounds, count, decode_plain)
    if not personal:
        return found
    keys = {f"customer-{i}": DataKey(f"k{i}", cipher(new_key())) for i in range(1000)}
    sealing = DataKeys(current=keys)
    opening = DataKeys(found={(s, k.key_id): k for s, k in keys.items()})
    gone = DataKeys(found={(s, k.key_id): None for s, k in keys.items()})
    sensitive = [WithPersonal(**_fields(i)) for i in range(count)]
    stored = [codec.encode("s", e, sealing) for e in sensitive]
    assert [codec.decode(*s, keys=opening) for s in stored] == sensitive

    def encode_personal() -> None:
        for e in sensitive:
            codec.encode("s", e, sealing)

    def decode_personal() -> None:
        for s in stored:
            codec.decode(*s, keys=opening)

    def decode_forgotten() -> None:
        for s in stored:
            codec.decode(*s, keys=gone)

    found["codec encode, 2 personal fields"] = _best(rounds, count, encode_personal)
    found["codec decode, 2 personal fields"] = _best(rounds, count, decode_personal)
    found["codec decode, forgotten subject"] = _best(rounds, count, decode_forgotten)
    return found


def store_costs(count: int, rounds: int) -> dict[str, float]:
    """A memory store, one event per append and a read of them all: µs per event, keys
    cached (the steady state of a running application)."""
    found: dict[str, float] = {}
    kinds: list[tuple[str, Callable[[int], object]]] = [
        ("ordinary", lambda i: Ordinary(**_fields(i)))
    ]
    options: dict[str, object] = {}
    if Personal is not None:
        kinds.append(("2 personal fields", lambda i: WithPersonal(**_fields(i))))
        options["keys"] = AesKeyProvider(generate_master_key())
    registry = EventRegistry()
    registry.register(Ordinary, "bench.Ordinary")
    if Personal is not None:
        registry.register(WithPersonal, "bench.WithPersonal")
    for label, make in kinds:
        events = [make(i) for i in range(count)]
        with facta.connect("memory://", codec=Codec(registry), **options) as store:
            for i in range(1000):  # every subject's key made and cached before timing
                store.append(f"warm-{i}", [make(i)], facta.NO_STREAM)
            appended, read = _store_runs(store, events)
            found[f"store append (memory), {label}"] = _best(rounds, count, appended)
            total = store.recorder.last_checkpoint().position
            found[f"store read_all (memory), {label}"] = _best(rounds, total, read)
    return found


def _store_runs(
    store: facta.EventStore, events: list[object]
) -> tuple[Callable[[], None], Callable[[], None]]:
    """A round of appends (one event each, into 100 streams) and a read of the whole log."""
    rounds = iter(range(10**9))

    def append() -> None:
        round_ = next(rounds)
        for i, event in enumerate(events):
            store.append(f"r{round_}-{i % 100}", [event], facta.ANY)

    def read() -> None:
        for _ in store.read_all():
            pass

    return append, read


def database_costs(url: str, label: str, subjects: int) -> dict[str, float]:
    """Costs that touch the database: µs (medians) of an append of a new subject vs a known
    one, a read that fetches its key, and a forget."""
    if Personal is None:
        return {}
    registry = EventRegistry()
    registry.register(WithPersonal, "bench.WithPersonal")
    keys = AesKeyProvider(generate_master_key())
    found: dict[str, float] = {}
    with facta.connect(url, codec=Codec(registry), keys=keys) as store:
        new, known, forget = [], [], []
        for i in range(subjects):
            event = WithPersonal(**{**_fields(i), "customer_id": f"subject-{i}"})
            started = time.perf_counter()
            store.append(f"new-{i}", [event], facta.NO_STREAM)
            new.append(time.perf_counter() - started)
            started = time.perf_counter()
            store.append(f"known-{i}", [event], facta.NO_STREAM)
            known.append(time.perf_counter() - started)
        found[f"append, new subject ({label})"] = statistics.median(new) * 1e6
        found[f"append, known subject ({label})"] = statistics.median(known) * 1e6
    with facta.connect(url, codec=Codec(registry), keys=keys, key_cache_seconds=0) as store:
        cold, warm = [], []
        for i in range(subjects):
            started = time.perf_counter()
            list(store.read_stream(f"new-{i}"))
            cold.append(time.perf_counter() - started)
        found[f"read 1 event, key fetched ({label})"] = statistics.median(cold) * 1e6
    with facta.connect(url, codec=Codec(registry), keys=keys) as store:
        for i in range(subjects):
            list(store.read_stream(f"new-{i}"))  # cache the key
            started = time.perf_counter()
            list(store.read_stream(f"new-{i}"))
            warm.append(time.perf_counter() - started)
        found[f"read 1 event, key cached ({label})"] = statistics.median(warm) * 1e6
        for i in range(subjects):
            started = time.perf_counter()
            assert store.forget(f"subject-{i}")
            forget.append(time.perf_counter() - started)
        found[f"forget ({label})"] = statistics.median(forget) * 1e6
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000, help="events a round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the best one counts")
    parser.add_argument("--subjects", type=int, default=200, help="subjects per database test")
    parser.add_argument("--postgres", metavar="URL", help="also measure on this PostgreSQL")
    args = parser.parse_args(argv)
    results = codec_costs(args.events, args.rounds)
    results.update(store_costs(args.events // 4, args.rounds))
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        results.update(database_costs(url, "SQLite", args.subjects))
    if args.postgres:
        import psycopg

        schema = f"facta_bench_{uuid.uuid4().hex[:12]}"
        try:
            results.update(
                database_costs(f"{args.postgres}?schema={schema}", "PostgreSQL", args.subjects)
            )
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(f"facta {facta.__file__}")
    print(f"{args.events:,} events a round, best of {args.rounds} rounds; database rows: medians")
    print()
    print("| what | µs per event (or call) |")
    print("| --- | ---: |")
    for what, micros in results.items():
        print(f"| {what} | {micros:,.2f} |")


if __name__ == "__main__":
    main()
