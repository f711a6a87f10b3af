"""Mistakes a user can make get a clear FactaError (or TypeError) and change nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import facta


@facta.event("tests.user_errors.Noted")
@dataclass(frozen=True)
class Noted:
    text: str


def test_a_closed_store_says_it_is_closed(url: str) -> None:
    store = facta.connect(url)
    store.append("s-1", [Noted("a")], facta.ANY)
    store.close()
    store.close()  # twice is harmless
    for use in (
        lambda: store.append("s-1", [Noted("b")], facta.ANY),
        lambda: store.stream_version("s-1"),
        lambda: list(store.read_all()),
        lambda: list(store.read_stream("s-1")),
        lambda: list(store.streams()),
    ):
        with pytest.raises(facta.StoreError, match="is closed"):
            use()


async def test_a_closed_async_store_says_it_is_closed(url: str) -> None:
    store = facta.connect_async(url)
    await store.close()
    with pytest.raises(facta.StoreError, match="is closed"):
        await store.append("s-1", [Noted("b")], facta.ANY)


def test_an_unknown_scheme_is_a_facta_error_listing_the_known_ones() -> None:
    with pytest.raises(facta.ConfigurationError, match=r"known schemes: .*memory.*sqlite"):
        facta.connect("mysql://x/y")
    with pytest.raises(facta.ConfigurationError, match="SCHEME://"):
        facta.connect("events.db")


def test_an_unknown_option_is_refused_with_the_options_that_exist() -> None:
    with pytest.raises(facta.ConfigurationError, match=r"unknown option pool_sise.*read_only"):
        facta.connect("memory://", pool_sise=3)


def test_codec_options_pass_through_connect() -> None:
    with facta.connect("memory://", max_event_size=100) as store:
        with pytest.raises(facta.EventTooLarge):
            store.append("s-1", [Noted("x" * 200)], facta.ANY)
        assert store.stream_version("s-1") == 0


def test_a_memory_url_with_anything_after_the_scheme_is_refused() -> None:
    with pytest.raises(facta.ConfigurationError, match="memory://"):
        facta.connect("memory://anything")


def test_read_all_after_a_plain_int_is_refused_clearly() -> None:
    with facta.connect("memory://") as store, pytest.raises(facta.FactaError, match="Checkpoint"):
        list(store.read_all(after=5))  # type: ignore[arg-type]


def test_a_sync_with_on_an_async_store_says_to_use_async_with() -> None:
    store = facta.connect_async("memory://")
    with pytest.raises(TypeError, match="async with"), store:
        pass


@pytest.mark.parametrize("stream_id", [" ", "\t\n", "x" * 1001, "é" * 501])
def test_stream_ids_are_limited_alike_on_every_backend(url: str, stream_id: str) -> None:
    with facta.connect(url) as store, pytest.raises(facta.InvalidStreamId):
        store.append(stream_id, [Noted("a")], facta.ANY)


def test_the_longest_stream_id_is_stored_on_every_backend(url: str) -> None:
    with facta.connect(url) as store:
        stream_id = "é" * 500  # 1,000 bytes of UTF-8: the limit
        store.append(stream_id, [Noted("a")], facta.ANY)
        assert [e.data for e in store.read_stream(stream_id)] == [Noted("a")]
