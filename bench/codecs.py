"""The codec's speed by kind of event class: dataclass, msgspec.Struct, pydantic model.

    python bench/codecs.py                  # 20,000 events a round, best of 7 rounds
    python bench/codecs.py --events 2000 --rounds 3

One event type of each kind, with the same seven fields (str, int, float, datetime, UUID,
list[str], dict[str, int]), is encoded (``Codec.encode``: the JSON, the read-back check, the
size check) and decoded (``Codec.decode``: typed decoding, with validation) in a loop; the
table gives events per second, the best round of each. A kind whose class cannot be
registered (pydantic not installed) is shown as ``n/a``. Nothing else runs meanwhile: the
kinds take turns within each round, so machine drift hits them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from facta.codec import Codec
from facta.errors import InvalidEvent
from facta.events import EventRegistry


@dataclasses.dataclass(frozen=True)
class DataclassDeposited:
    account: str
    amount: int
    rate: float
    at: datetime
    reference: uuid.UUID
    tags: list[str]
    limits: dict[str, int]


class StructDeposited(msgspec.Struct, frozen=True):
    account: str
    amount: int
    rate: float
    at: datetime
    reference: uuid.UUID
    tags: list[str]
    limits: dict[str, int]


def _pydantic_class() -> type | None:
    """The pydantic event class, or None without pydantic."""
    try:
        import pydantic
    except ImportError:
        return None

    class PydanticDeposited(pydantic.BaseModel, frozen=True):
        account: str
        amount: int
        rate: float
        at: datetime
        reference: uuid.UUID
        tags: list[str]
        limits: dict[str, int]

    return PydanticDeposited


def _fields(index: int) -> dict[str, Any]:
    return {
        "account": f"account-{index % 100}",
        "amount": index,
        "rate": 0.25 + index,
        "at": datetime(2025, 1, 1, 12, 0, index % 60, tzinfo=UTC),
        "reference": uuid.UUID(int=index),
        "tags": ["web", f"batch-{index % 7}"],
        "limits": {"daily": 1000, "monthly": 20000 + index},
    }


class Kind:
    """One kind of event class, registered in a codec of its own, with its events."""

    def __init__(self, label: str, cls: type | None, count: int) -> None:
        self.label = label
        self.codec: Codec | None = None
        self.events: list[object] = []
        self.stored: list[tuple[str, int, int, bytes]] = []
        if cls is None:
            return
        registry = EventRegistry()
        try:
            registry.register(cls, "bench.Deposited")
        except InvalidEvent:  # a facta that does not take this kind of class
            return
        self.codec = Codec(registry)
        self.events = [cls(**_fields(index)) for index in range(count)]
        self.stored = [self.codec.encode("bench-1", event) for event in self.events]
        decoded = [self.codec.decode(*stored) for stored in self.stored]
        assert decoded == self.events, f"{label}: events do not read back equal"

    def encode(self) -> None:
        assert self.codec is not None
        encode = self.codec.encode
        for event in self.events:
            encode("bench-1", event)

    def decode(self) -> None:
        assert self.codec is not None
        decode = self.codec.decode
        for stored in self.stored:
            decode(*stored)


def _rate(run: Callable[[], None], count: int) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000, help="events a round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the best one counts")
    args = parser.parse_args(argv)
    kinds = [
        Kind("dataclass", DataclassDeposited, args.events),
        Kind("msgspec.Struct", StructDeposited, args.events),
        Kind("pydantic model", _pydantic_class(), args.events),
    ]
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for kind in kinds:
            if kind.codec is None:
                continue
            for step, run in (("encode", kind.encode), ("decode", kind.decode)):
                rate = _rate(run, args.events)
                best[kind.label, step] = max(best.get((kind.label, step), 0.0), rate)
    print(f"{args.events:,} events a round, best of {args.rounds} rounds; events/s")
    print()
    print("| event class | encode | decode |")
    print("| --- | ---: | ---: |")
    for kind in kinds:
        cells = [
            "n/a" if (kind.label, step) not in best else f"{best[kind.label, step]:,.0f}"
            for step in ("encode", "decode")
        ]
        print(f"| {kind.label} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
