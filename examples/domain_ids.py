"""Ids from the domain: any non-empty string is a stream id, and ``facta.id_from_key`` derives
a stable UUID from a natural key, so "one customer per e-mail address" needs no lookup table."""

from dataclasses import dataclass

import facta


@facta.event("CustomerRegistered")
@dataclass(frozen=True)
class CustomerRegistered:
    email: str
    name: str


@facta.event("OrderPlaced")
@dataclass(frozen=True)
class OrderPlaced:
    customer_id: str
    items: list[str]


def customer_id(email: str) -> str:
    """The same address always gives the same id (a UUIDv5), on every machine."""
    return facta.id_from_key("customer", email.strip().lower())


with facta.connect("memory://") as store:
    ada = customer_id("ada@example.com")
    print("customer id:", ada, ada == customer_id(" ADA@example.com"))

    # NO_STREAM makes the stream id a uniqueness constraint: the second registration fails.
    store.append(ada, [CustomerRegistered("ada@example.com", "Ada")], facta.NO_STREAM)
    try:
        store.append(ada, [CustomerRegistered("ada@example.com", "Ada L.")], facta.NO_STREAM)
    except facta.ConcurrencyError as taken:
        print("already registered:", taken.stream_id, "is at version", taken.actual)

    # A domain id works as it is.
    store.append("order-2026-0042", [OrderPlaced(ada, ["tea", "biscuits"])], facta.NO_STREAM)
    for stream_id, version in store.streams():
        print(stream_id, version)
